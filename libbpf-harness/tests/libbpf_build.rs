//! The unit tests of probeconf's src/loaders/libbpf_build.rs, compiled here
//! until the runner includes that module (it is not wired into src/lib.rs yet).
#[path = "../../src/loader/libbpf_build.rs"]
#[allow(dead_code)]
mod libbpf_build;
