//! Builds the harness for libbpf versions or source trees with probeconf's
//! own build module (src/loaders/libbpf_build.rs, compiled here as it is), and
//! prints where each binary is and what it links:
//!
//!     cargo run --release --example build -- 1.5 1.6 1.7 /path/to/libbpf
#[path = "../../src/loader/libbpf_build.rs"]
#[allow(dead_code)]
mod libbpf_build;

fn main() {
    let mut failed = false;
    for spec in std::env::args().skip(1) {
        let t = std::time::Instant::now();
        match libbpf_build::ensure_libbpf_harness(libbpf_build::LibbpfBuild::parse(&spec)) {
            Ok((bin, info)) => {
                println!("{spec}\t{}\t{:.1}s\t{}", bin.display(), t.elapsed().as_secs_f64(), serde_json::to_string(&info).unwrap());
            }
            Err(e) => {
                eprintln!("{spec}: {e}");
                failed = true;
            }
        }
    }
    std::process::exit(failed as i32);
}
