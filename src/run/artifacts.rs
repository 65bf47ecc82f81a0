//! The artefacts built by build.rs, embedded in the binary so that `probeconf`
//! is self-contained (it is copied alone into VM initramfs images). The loaders
//! all receive these exact bytes: libbpf-rs from memory, the Go harness from the
//! file [`RunDir`] writes.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The recorders of every kind but the sessions: no kfuncs, so loading them
/// never needs the kernel's BTF.
pub static RECORDERS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/recorders.bpf.o"));
/// The BTF-based tracing recorders (fentry, fexit and their multi forms): no
/// kfuncs. Their target is named before load (or, multi, at link time).
pub static TRACING: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tracing.bpf.o"));
/// Session recorders with the 6.10–6.19 session kfunc prototypes (no arguments).
pub static SESSIONS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sessions.bpf.o"));
/// Session recorders with the 7.0 session kfunc prototypes (`void *ctx`).
pub static SESSIONS_CTX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sessions.ctx.bpf.o"));
pub static FEATURE_PROBES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/feature_probes.bpf.o"));
pub static FEATURE_PROBES_SESSION: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/feature_probes_session.bpf.o"));
pub static FEATURE_PROBES_SESSION_CTX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/feature_probes_session.ctx.bpf.o"));
/// The USDT recorder (libbpf's usdt.bpf.h), one build: no session kfuncs.
pub static USDT_RECORDER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/usdt_recorder.bpf.o"));
/// Counting-only programs for `probeconf bench`, per session-kfunc prototype.
pub static BENCH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bench.bpf.o"));
pub static BENCH_CTX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bench.ctx.bpf.o"));
pub static BENCH_USDT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bench_usdt.bpf.o"));
/// A program with 1000 functions `pc_bf_0000`… for the attach-time bench.
pub static BENCH_TARGET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bench-target"));
pub static PROBE_TARGET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe-target"));
pub static LIB_PROBE_TARGET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libprobetarget.so"));

pub const USDT_OBJECT: &str = "usdt_recorder.bpf.o";

/// Which build of an object: the session kfuncs' prototype it was compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KfuncVariant {
    /// `bpf_session_cookie(void)`: kernels 6.10–6.19.
    NoArg,
    /// `bpf_session_cookie(void *ctx)`: kernels from 7.0.
    Ctx,
}

impl KfuncVariant {
    pub fn sessions(self) -> &'static [u8] {
        match self {
            KfuncVariant::NoArg => SESSIONS,
            KfuncVariant::Ctx => SESSIONS_CTX,
        }
    }
    pub fn feature_probes_session(self) -> &'static [u8] {
        match self {
            KfuncVariant::NoArg => FEATURE_PROBES_SESSION,
            KfuncVariant::Ctx => FEATURE_PROBES_SESSION_CTX,
        }
    }
    pub fn object_file_name(self) -> &'static str {
        match self {
            KfuncVariant::NoArg => "sessions.bpf.o",
            KfuncVariant::Ctx => "sessions.ctx.bpf.o",
        }
    }
}

pub const RECORDERS_OBJECT: &str = "recorders.bpf.o";
pub const TRACING_OBJECT: &str = "tracing.bpf.o";

/// Writes every embedded artefact into `dir` (for the Go tests and VM images).
pub fn write_all(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for (name, bytes, mode) in [
        ("recorders.bpf.o", RECORDERS, 0o644),
        (TRACING_OBJECT, TRACING, 0o644),
        ("sessions.bpf.o", SESSIONS, 0o644),
        ("sessions.ctx.bpf.o", SESSIONS_CTX, 0o644),
        ("feature_probes.bpf.o", FEATURE_PROBES, 0o644),
        ("feature_probes_session.bpf.o", FEATURE_PROBES_SESSION, 0o644),
        ("feature_probes_session.ctx.bpf.o", FEATURE_PROBES_SESSION_CTX, 0o644),
        ("usdt_recorder.bpf.o", USDT_RECORDER, 0o644),
        ("bench.bpf.o", BENCH, 0o644),
        ("bench.ctx.bpf.o", BENCH_CTX, 0o644),
        ("bench_usdt.bpf.o", BENCH_USDT, 0o644),
        ("probe-target", PROBE_TARGET, 0o755),
        ("libprobetarget.so", LIB_PROBE_TARGET, 0o755),
    ] {
        let p = dir.join(name);
        fs::write(&p, bytes)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// A private directory for one case run holding fresh copies of probe-target,
/// its library and the BPF objects. Private copies give each run its own inodes,
/// so a uprobe attached for all processes only ever sees this run's targets,
/// even when other runs (or tests) execute probe-target at the same time.
pub struct RunDir {
    dir: tempfile::TempDir,
}

impl RunDir {
    pub fn new() -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("probeconf-run-").tempdir()?;
        let me = RunDir { dir };
        me.write("probe-target", PROBE_TARGET, 0o755)?;
        me.write("libprobetarget.so", LIB_PROBE_TARGET, 0o755)?;
        me.write(RECORDERS_OBJECT, RECORDERS, 0o644)?;
        me.write(TRACING_OBJECT, TRACING, 0o644)?;
        me.write(KfuncVariant::NoArg.object_file_name(), SESSIONS, 0o644)?;
        me.write(KfuncVariant::Ctx.object_file_name(), SESSIONS_CTX, 0o644)?;
        me.write(USDT_OBJECT, USDT_RECORDER, 0o644)?;
        Ok(me)
    }

    fn write(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        let p = self.dir.path().join(name);
        fs::write(&p, bytes)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn probe_target(&self) -> PathBuf {
        self.path().join("probe-target")
    }

    pub fn object(&self, v: KfuncVariant) -> PathBuf {
        self.path().join(v.object_file_name())
    }

    pub fn recorders_object(&self) -> PathBuf {
        self.path().join(RECORDERS_OBJECT)
    }

    pub fn tracing_object(&self) -> PathBuf {
        self.path().join(TRACING_OBJECT)
    }

    pub fn usdt_object(&self) -> PathBuf {
        self.path().join(USDT_OBJECT)
    }

    /// Resolves a case's `binary:` value: `probe-target`, `libprobetarget.so`, or a
    /// path relative to the case file's directory.
    pub fn resolve_binary(&self, binary: &str, case_dir: &Path) -> PathBuf {
        match binary {
            "probe-target" | "libprobetarget.so" => self.path().join(binary),
            other => {
                // Absolute, so that every loader (and the harness, which has
                // another working directory) resolves the same file.
                let p = case_dir.join(other);
                std::path::absolute(&p).unwrap_or(p)
            }
        }
    }
}
