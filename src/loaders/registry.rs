//! The one loader registry: every way to name a loader on the command line,
//! in the guest, in tests and in a rerun's child process goes through here.
//!
//! ```text
//! --loader all                 the default pair: libbpf (pinned) and cilium (pinned)
//! --loader libbpf              libbpf-rs 0.27.2 / libbpf 1.7, in this process
//! --loader libbpf@1.5          a libbpf harness built against that release (1.5, 1.6, 1.7)
//! --loader libbpf@/src/libbpf  a libbpf harness built against a libbpf source tree
//!                              (libbpf's own layout, or a kernel tree's tools/lib/bpf)
//! --loader cilium              the Go harness on the pinned cilium/ebpf
//! --loader cilium@v0.20.0      the Go harness built against that release
//! --loader cilium@/src/ebpf    the Go harness on a cilium/ebpf checkout (a `replace`)
//! --loader NAME=COMMAND        any program that speaks go-harness/PROTOCOL.md
//! --loader bpftrace@0.27.1     bpftrace from a private root of Debian's package at that
//!                              version (or suite: bpftrace@sid), run with the root's loader
//! --loader bpftrace@/PATH      a bpftrace binary (src/loaders/bpftrace.rs)
//! ```
//!
//! A request is parsed into a [`LoaderRequest`]; [`open`] builds what it
//! needs (cached per version under the user's cache directory) and gives a
//! [`Loader`]. A loader says how a fresh process opens it again
//! ([`LoaderSpec`]), so reruns and VM guests get the same loader.

use super::Loader;
use crate::case::LoaderId;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A loader as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoaderRequest {
    /// libbpf: the pinned build (`None`), a release (`1.5`), or a source tree.
    Libbpf(Option<LibraryPick>),
    /// cilium/ebpf: the pinned module version, a release (`v0.20.0`), or a checkout.
    Cilium(Option<LibraryPick>),
    /// A third-party harness: a name for reports and the command that runs it.
    Command { name: String, command: Vec<String> },
    /// bpftrace, a client with its own programs: a Debian version or suite
    /// (a private root), or a binary's path.
    Bpftrace(LibraryPick),
}

/// Which build of a library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LibraryPick {
    Version(String),
    Path(PathBuf),
}

/// The names `--loader` knows, for error messages.
pub const KNOWN: &str = "all, libbpf[@1.5|@1.6|@1.7|@PATH], cilium[@vX.Y.Z|@PATH], bpftrace@VERSION|@SUITE|@PATH, NAME=COMMAND";

impl LoaderRequest {
    /// Parses one `--loader` value (`all` is expanded by [`parse_list`]).
    pub fn parse(text: &str) -> Result<LoaderRequest, String> {
        if let Some((name, command)) = text.split_once('=') {
            let command: Vec<String> = command.split_whitespace().map(str::to_string).collect();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) || command.is_empty() {
                return Err(format!("--loader `{text}`: NAME=COMMAND needs a name [A-Za-z0-9._@-] and a command"));
            }
            return Ok(LoaderRequest::Command { name: name.into(), command });
        }
        let (name, pick) = match text.split_once('@') {
            Some((_, p)) if p.is_empty() => return Err(format!("--loader `{text}`: nothing after `@` (a version or a path)")),
            Some((n, p)) => (n, Some(pick(p))),
            None => (text, None),
        };
        match name {
            "libbpf" => {
                if let Some(LibraryPick::Version(v)) = &pick {
                    if !v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
                        return Err(format!("--loader `{text}`: a libbpf version is like 1.5 or 1.7.0 (or a path to a source tree)"));
                    }
                }
                Ok(LoaderRequest::Libbpf(pick))
            }
            "cilium" => {
                if let Some(LibraryPick::Version(v)) = &pick {
                    if !v.starts_with('v') {
                        return Err(format!("--loader `{text}`: a cilium/ebpf version is a module version like v0.20.0 (or a path)"));
                    }
                }
                Ok(LoaderRequest::Cilium(pick))
            }
            "bpftrace" => match pick {
                Some(p) => Ok(LoaderRequest::Bpftrace(p)),
                None => Err(format!("--loader `{text}`: bpftrace needs a Debian version or suite (bpftrace@0.27.1, bpftrace@trixie) or a path")),
            },
            other => Err(format!("--loader `{text}`: unknown loader `{other}` (known: {KNOWN})")),
        }
    }

    /// The loader's name in reports, before it is built (a built loader may
    /// refine it with the exact version).
    pub fn label(&self) -> String {
        let with = |n: &str, p: &Option<LibraryPick>| match p {
            None => n.to_string(),
            Some(LibraryPick::Version(v)) => format!("{n}@{v}"),
            Some(LibraryPick::Path(p)) => format!("{n}@{}", p.display()),
        };
        match self {
            LoaderRequest::Libbpf(p) => with("libbpf", p),
            LoaderRequest::Cilium(p) => with("cilium", p),
            LoaderRequest::Command { name, .. } => name.clone(),
            LoaderRequest::Bpftrace(p) => with("bpftrace", &Some(p.clone())),
        }
    }

    pub fn id(&self) -> LoaderId {
        match self {
            LoaderRequest::Libbpf(_) => LoaderId::Libbpf,
            LoaderRequest::Cilium(_) => LoaderId::Cilium,
            LoaderRequest::Command { .. } => LoaderId::Other,
            LoaderRequest::Bpftrace(_) => LoaderId::Bpftrace,
        }
    }
}

/// A path when the text is one (absolute, `./`, `../` or `~/`), else a version.
fn pick(p: &str) -> LibraryPick {
    if p.starts_with('/') || p.starts_with("./") || p.starts_with("../") || p.starts_with("~/") || p == "." {
        let path = match p.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(rest),
            None => PathBuf::from(p),
        };
        LibraryPick::Path(path)
    } else {
        LibraryPick::Version(p.to_string())
    }
}

/// Parses repeated `--loader` values; `all` (the default when none is
/// given) is the pinned libbpf and cilium pair. Duplicates are refused.
pub fn parse_list(items: &[String]) -> Result<Vec<LoaderRequest>, String> {
    let mut out: Vec<LoaderRequest> = Vec::new();
    let items: Vec<&str> = if items.is_empty() { vec!["all"] } else { items.iter().map(|s| s.as_str()).collect() };
    for item in items {
        let expanded = if item == "all" { vec![LoaderRequest::Libbpf(None), LoaderRequest::Cilium(None)] } else { vec![LoaderRequest::parse(item)?] };
        for r in expanded {
            if out.iter().any(|o| o.label() == r.label()) {
                return Err(format!("--loader `{}` is given twice", r.label()));
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// A loader as a child process (a rerun, a VM guest) opens it again: the
/// same library build, the same label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LoaderSpec {
    /// The libbpf linked into probeconf itself.
    Libbpf,
    /// A program that speaks the protocol: its command line, the label it is
    /// reported under, and the objects it brings (file name, path).
    Harness {
        label: String,
        id: LoaderId,
        command: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        objects: Vec<(String, PathBuf)>,
    },
    /// bpftrace: how it is run (src/loaders/bpftrace.rs).
    Bpftrace(super::bpftrace::BpftraceCommand),
}

impl LoaderSpec {
    pub fn open(&self) -> Result<Box<dyn Loader>, String> {
        match self {
            LoaderSpec::Libbpf => Ok(Box::new(super::libbpf::LibbpfLoader)),
            LoaderSpec::Harness { label, id, command, objects } => {
                Ok(Box::new(super::harness::HarnessLoader::new(command.clone(), label.clone(), *id)?.with_objects(objects.clone())))
            }
            LoaderSpec::Bpftrace(cmd) => Ok(Box::new(super::bpftrace::BpftraceLoader { cmd: cmd.clone() })),
        }
    }

    pub fn id(&self) -> LoaderId {
        match self {
            LoaderSpec::Libbpf => LoaderId::Libbpf,
            LoaderSpec::Harness { id, .. } => *id,
            LoaderSpec::Bpftrace(_) => LoaderId::Bpftrace,
        }
    }
}

/// `git describe --always --dirty` and the commit of a checkout, or "not a
/// git tree".
pub fn git_describe(dir: &std::path::Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match (git(&["rev-parse", "--show-toplevel"]), git(&["describe", "--always", "--dirty"]), git(&["rev-parse", "HEAD"])) {
        (Some(top), Some(d), Some(c)) if std::path::Path::new(&top) == dir || dir.starts_with(&top) => format!("{d} ({c})"),
        _ => "not a git tree".into(),
    }
}

/// Builds (if needed) and opens the loader asked for.
pub fn open(req: &LoaderRequest) -> Result<Box<dyn Loader>, String> {
    let label = req.label();
    let harness = |command: Vec<String>, id: LoaderId, label: String| -> Result<Box<dyn Loader>, String> {
        Ok(Box::new(super::harness::HarnessLoader::new(command, label, id)?))
    };
    match req {
        LoaderRequest::Libbpf(None) => Ok(Box::new(super::libbpf::LibbpfLoader)),
        LoaderRequest::Libbpf(Some(pick)) => {
            let build = match pick {
                LibraryPick::Version(v) => super::libbpf_build::LibbpfBuild::Version(v.clone()),
                LibraryPick::Path(p) => super::libbpf_build::LibbpfBuild::Tree(p.clone()),
            };
            let (bin, info) = super::libbpf_build::ensure_libbpf_harness(build)?;
            Ok(Box::new(super::harness::HarnessLoader::new(vec![bin.display().to_string()], label, LoaderId::Libbpf)?.with_objects(info.objects)))
        }
        LoaderRequest::Cilium(pick) => {
            let bin = super::go_build::ensure_harness(pick.as_ref())?;
            let label = match pick {
                None => "cilium".to_string(),
                Some(_) => label,
            };
            let l = super::harness::HarnessLoader::new(vec![bin.display().to_string()], label, LoaderId::Cilium)?;
            Ok(Box::new(match pick {
                Some(LibraryPick::Path(p)) => l.with_note(format!("checkout {}: {}", p.display(), git_describe(p))),
                _ => l,
            }))
        }
        LoaderRequest::Command { name, command } => harness(command.clone(), LoaderId::Other, name.clone()),
        LoaderRequest::Bpftrace(pick) => {
            let cmd = match pick {
                LibraryPick::Version(v) => super::bpftrace::BpftraceCommand::from_debian(v)?,
                LibraryPick::Path(p) => super::bpftrace::BpftraceCommand::from_path(p)?,
            };
            Ok(Box::new(super::bpftrace::BpftraceLoader { cmd }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loader_syntax() {
        let l = |s: &str| LoaderRequest::parse(s);
        assert_eq!(l("libbpf").unwrap(), LoaderRequest::Libbpf(None));
        assert_eq!(l("libbpf@1.5").unwrap(), LoaderRequest::Libbpf(Some(LibraryPick::Version("1.5".into()))));
        assert_eq!(l("libbpf@/src/libbpf").unwrap(), LoaderRequest::Libbpf(Some(LibraryPick::Path("/src/libbpf".into()))));
        assert_eq!(l("cilium@v0.20.0").unwrap(), LoaderRequest::Cilium(Some(LibraryPick::Version("v0.20.0".into()))));
        assert_eq!(l("cilium@./ebpf").unwrap(), LoaderRequest::Cilium(Some(LibraryPick::Path("./ebpf".into()))));
        assert_eq!(
            l("aya=/usr/bin/aya-harness run").unwrap(),
            LoaderRequest::Command { name: "aya".into(), command: vec!["/usr/bin/aya-harness".into(), "run".into()] }
        );
        assert_eq!(l("libbpf@1.5").unwrap().label(), "libbpf@1.5");
        assert_eq!(l("bpftrace@0.27.1").unwrap(), LoaderRequest::Bpftrace(LibraryPick::Version("0.27.1".into())));
        assert_eq!(l("bpftrace@0.27.1").unwrap().label(), "bpftrace@0.27.1");
        assert_eq!(l("bpftrace@/usr/bin/bpftrace").unwrap(), LoaderRequest::Bpftrace(LibraryPick::Path("/usr/bin/bpftrace".into())));
        assert_eq!(l("bpftrace@sid").unwrap().id(), LoaderId::Bpftrace);
        for bad in ["bcc", "libbpf@", "libbpf@one", "cilium@0.20.0", "=x", "a=", "bpftrace", "bpftrace@"] {
            assert!(l(bad).is_err(), "{bad}");
        }
        assert!(l("bcc").unwrap_err().contains("libbpf[@1.5"));
        let all = parse_list(&[]).unwrap();
        assert_eq!(all.iter().map(|r| r.label()).collect::<Vec<_>>(), ["libbpf", "cilium"]);
        assert!(parse_list(&["all".into(), "libbpf".into()]).unwrap_err().contains("twice"));
        let three = parse_list(&["libbpf@1.5".into(), "libbpf@1.7".into(), "cilium@v0.20.0".into()]).unwrap();
        assert_eq!(three.len(), 3);
    }
}
