//! What this build links: libbpf-rs, libbpf-sys and libbpf, for the `version`
//! and `hello` lines. The libbpf version is the linked library's own
//! (`libbpf_major_version()`/`libbpf_minor_version()`), completed with the
//! patch level of the release libbpf-sys vendors when the two agree, so a
//! build never reports another libbpf than the one it runs.

use serde::Serialize;

mod build {
    include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
}

pub use build::{API, LIBBPF_MAP, LIBBPF_RELEASE, LIBBPF_RS, LIBBPF_SYS, LIBBPF_VENDORED, SOURCE_GIT, SOURCE_LAYOUT, SOURCE_PATH};

/// `(major, minor)` of the linked libbpf.
pub fn linked() -> (u32, u32) {
    // SAFETY: plain getters without arguments or side effects.
    unsafe { (libbpf_rs::libbpf_sys::libbpf_major_version(), libbpf_rs::libbpf_sys::libbpf_minor_version()) }
}

/// The libbpf version linked: the library's own major and minor, completed
/// with the patch level when the build knows it and agrees: `1.7.0` (the
/// release libbpf-sys vendors), `1.6.3` for a libbpf-layout source tree (its
/// src/Makefile's release), `1.6` for a kernel tree (no release number), or
/// `1.6 (the build says 1.7.0)` if build and library disagree.
pub fn libbpf_version() -> String {
    let (major, minor) = linked();
    let short = format!("{major}.{minor}");
    let exact = match SOURCE_LAYOUT {
        "" => LIBBPF_VENDORED,
        "libbpf" => LIBBPF_RELEASE,
        _ => return short,
    };
    if exact.is_empty() {
        short
    } else if exact.starts_with(&format!("{short}.")) {
        exact.to_string()
    } else {
        format!("{short} (the build says {exact})")
    }
}

/// Where the linked libbpf came from.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Source {
    /// `vendored` (libbpf-sys's own copy) or `tree` (a source tree).
    pub kind: &'static str,
    /// The tree's path (a tree build only).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub path: &'static str,
    /// `libbpf` or `kernel` (tools/lib/bpf) layout (a tree build only).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub layout: &'static str,
    /// The tree's `git describe --always --dirty` and commit, or "not a git tree".
    #[serde(skip_serializing_if = "str::is_empty")]
    pub git: &'static str,
    /// The highest LIBBPF_X.Y.Z symbol version in the compiled libbpf.map.
    pub libbpf_map: &'static str,
    /// The release named by the compiled tree's src/Makefile (a kernel tree's is synthesized: X.Y.0).
    pub release: &'static str,
}

pub fn source() -> Source {
    Source {
        kind: if SOURCE_PATH.is_empty() { "vendored" } else { "tree" },
        path: SOURCE_PATH,
        layout: SOURCE_LAYOUT,
        git: SOURCE_GIT,
        libbpf_map: LIBBPF_MAP,
        release: LIBBPF_RELEASE,
    }
}

/// The `version` subcommand's answer.
#[derive(Clone, Debug, Serialize)]
pub struct VersionInfo {
    pub protocol: u32,
    pub library: &'static str,
    /// The linked libbpf (see [`libbpf_version`]).
    pub version: String,
    pub libbpf_rs: &'static str,
    pub libbpf_sys: &'static str,
    /// The libbpf-rs API module compiled in (src/api.rs).
    pub api: &'static str,
    pub source: Source,
}

pub fn info() -> VersionInfo {
    VersionInfo {
        protocol: crate::protocol::PROTOCOL,
        library: crate::protocol::LIBRARY,
        version: libbpf_version(),
        libbpf_rs: LIBBPF_RS,
        libbpf_sys: LIBBPF_SYS,
        api: API,
        source: source(),
    }
}

/// For report headers: `libbpf-rs 0.27.2 (libbpf 1.7.0)`.
pub fn label() -> String {
    format!("libbpf-rs {LIBBPF_RS} (libbpf {})", libbpf_version())
}
