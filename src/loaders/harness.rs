//! A loader that is a program speaking go-harness/PROTOCOL.md: the Go
//! harness on cilium/ebpf, the libbpf harness at any libbpf version, or a
//! third party's (`--loader NAME=COMMAND`). The runner talks to all of them
//! the same way: `COMMAND version` once, then `COMMAND run` per case with the
//! one request of [`super::request`]; the wire types are the libbpf harness
//! crate's `protocol` module. Decoding and normalisation stay on this side.

use super::{AttachRequest, Attached, Drained, FailPhase, LibraryInfo, Loader, LoaderError, Via, ViaKind};
use crate::case::LoaderId;
use crate::judge::classify::{Classified, ErrorClass};
use libbpf_harness::protocol::{self, ErrorLine, PROTOCOL};
use std::io::{BufRead, BufReader, Write};

pub struct HarnessLoader {
    command: Vec<String>,
    label: String,
    id: LoaderId,
    library: LibraryInfo,
    objects: Vec<(String, std::path::PathBuf)>,
}

/// What `COMMAND version` says: the protocol fields, and whatever else the
/// harness tells about its library (kept to describe it in reports).
#[derive(serde::Deserialize)]
struct VersionLine {
    protocol: u32,
    library: String,
    version: String,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// The library's version as reports show it: the version, and what else the
/// harness said that names the build exactly (the libbpf-rs and libbpf-sys it
/// links, a source tree and its `git describe`).
fn describe(v: &VersionLine) -> String {
    let mut parts = Vec::new();
    for key in ["libbpf_rs", "libbpf_sys"] {
        if let Some(s) = v.extra.get(key).and_then(|x| x.as_str()) {
            parts.push(format!("{} {s}", key.replace('_', "-")));
        }
    }
    if let Some(src) = v.extra.get("source").and_then(|s| s.as_object()) {
        if src.get("kind").and_then(|k| k.as_str()) == Some("tree") {
            let path = src.get("path").and_then(|p| p.as_str()).unwrap_or("?");
            let git = src.get("git").and_then(|p| p.as_str()).unwrap_or("not a git tree");
            parts.push(format!("source tree {path}: {git}"));
        }
    }
    if let Some(r) = v.extra.get("replace").and_then(|r| r.as_str()) {
        parts.push(format!("replaced by {r}"));
    }
    if parts.is_empty() {
        v.version.clone()
    } else {
        format!("{} ({})", v.version, parts.join(", "))
    }
}

impl HarnessLoader {
    /// A loader on a harness command; asks it for its version once.
    pub fn new(command: Vec<String>, label: String, id: LoaderId) -> Result<Self, String> {
        let (exe, args) = command.split_first().ok_or("an empty harness command")?;
        let out = duct::cmd(exe, args.iter().map(String::as_str).chain(["version"]))
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| format!("running {exe}: {e}"))?;
        let v: VersionLine = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!("`{} version`: not a version line ({e}): {}", command.join(" "), String::from_utf8_lossy(&out.stderr).trim())
        })?;
        if v.protocol != PROTOCOL {
            return Err(format!("{label}: the harness speaks protocol {}, this probeconf speaks {PROTOCOL}: rebuild it", v.protocol));
        }
        let library = LibraryInfo { loader: id, library: v.library.clone(), version: describe(&v) };
        Ok(HarnessLoader { command, label, id, library, objects: Vec::new() })
    }

    /// Adds to the library's description what only the runner knows (the
    /// origin of a checkout the harness was built on).
    pub fn with_note(mut self, note: String) -> Self {
        self.library.version = format!("{} ({note})", self.library.version);
        self
    }

    /// The objects this harness brings (see [`Loader::own_objects`]).
    pub fn with_objects(mut self, objects: Vec<(String, std::path::PathBuf)>) -> Self {
        self.objects = objects;
        self
    }

    pub fn command(&self) -> &[String] {
        &self.command
    }
}

fn harness_error(detail: String) -> LoaderError {
    LoaderError { phase: FailPhase::Harness, probe: None, error: Classified { class: ErrorClass::Other, errno: None, detail } }
}

fn phase_of(phase: protocol::Phase) -> FailPhase {
    match phase {
        protocol::Phase::Load => FailPhase::Load,
        protocol::Phase::Attach => FailPhase::Attach,
        protocol::Phase::Drain => FailPhase::Drain,
        protocol::Phase::Protocol => FailPhase::Harness,
    }
}

fn from_error(e: ErrorLine) -> LoaderError {
    LoaderError { phase: phase_of(e.phase), probe: e.probe, error: Classified { class: e.class, errno: e.errno, detail: e.detail } }
}

/// One line from the harness, by its `type`.
enum Line {
    Hello(protocol::Hello),
    Attached(protocol::Attached),
    Events(protocol::Events),
    Done,
    Error(ErrorLine),
}

/// A running harness session.
struct Session {
    /// duct owns the stdout pipe: EOF arrives when the harness exits, and
    /// dropping the handle kills a harness that is still running.
    lines: BufReader<duct::ReaderHandle>,
    stdin: Option<os_pipe::PipeWriter>,
    stderr: tempfile::NamedTempFile,
}

impl Session {
    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(12)..].join("\n")
    }

    fn send<T: serde::Serialize>(&mut self, v: &T) -> Result<(), LoaderError> {
        let w = self.stdin.as_mut().ok_or_else(|| harness_error("harness stdin closed".into()))?;
        let line = serde_json::to_string(v).expect("protocol lines serialise");
        writeln!(w, "{line}").and_then(|_| w.flush()).map_err(|e| harness_error(format!("writing to the harness: {e}")))
    }

    fn recv(&mut self) -> Result<Line, LoaderError> {
        let mut s = String::new();
        loop {
            s.clear();
            let n = self.lines.read_line(&mut s).map_err(|e| harness_error(format!("reading from the harness: {e}")))?;
            if n == 0 {
                let status =
                    self.lines.get_ref().try_wait().ok().flatten().map(|o| format!("{}", o.status)).unwrap_or_else(|| "still running".into());
                return Err(harness_error(format!("the harness ended without answering ({status}); stderr:\n{}", self.stderr_tail())));
            }
            if !s.trim().is_empty() {
                break;
            }
        }
        let violation = |e: String| harness_error(format!("protocol violation: {e}: {}", s.trim()));
        let v: serde_json::Value = serde_json::from_str(&s).map_err(|e| violation(e.to_string()))?;
        let parse = |v: serde_json::Value| -> Result<Line, serde_json::Error> {
            Ok(match v["type"].as_str() {
                Some("hello") => Line::Hello(serde_json::from_value(v)?),
                Some("attached") => Line::Attached(serde_json::from_value(v)?),
                Some("events") => Line::Events(serde_json::from_value(v)?),
                Some("done") => Line::Done,
                Some("error") => Line::Error(serde_json::from_value(v)?),
                _ => return Err(serde::de::Error::custom("unknown or missing `type`")),
            })
        };
        parse(v).map_err(|e| violation(e.to_string()))
    }
}

impl Loader for HarnessLoader {
    fn id(&self) -> LoaderId {
        self.id
    }

    fn label(&self) -> String {
        self.label.clone()
    }

    fn library(&self) -> LibraryInfo {
        self.library.clone()
    }

    fn respawn(&self) -> Option<super::registry::LoaderSpec> {
        Some(super::registry::LoaderSpec::Harness {
            label: self.label.clone(),
            id: self.id,
            command: self.command.clone(),
            objects: self.objects.clone(),
        })
    }

    fn own_objects(&self) -> Vec<(String, std::path::PathBuf)> {
        self.objects.clone()
    }

    fn attach(&self, req: &AttachRequest<'_>) -> Result<Box<dyn Attached>, LoaderError> {
        let (stdin_r, stdin_w) = os_pipe::pipe().map_err(|e| harness_error(format!("pipe: {e}")))?;
        let stderr = tempfile::NamedTempFile::new().map_err(|e| harness_error(format!("tempfile: {e}")))?;
        let (exe, args) = self.command.split_first().expect("checked in new");
        let handle = duct::cmd(exe, args.iter().map(String::as_str).chain(["run"]))
            .stdin_file(stdin_r)
            .stderr_path(stderr.path())
            .unchecked()
            .reader()
            .map_err(|e| harness_error(format!("starting {exe}: {e}")))?;
        let mut s = Session { lines: BufReader::new(handle), stdin: Some(stdin_w), stderr };
        match s.recv()? {
            Line::Hello(h) if h.protocol == PROTOCOL => {}
            Line::Hello(h) => return Err(harness_error(format!("harness protocol {}, want {PROTOCOL}", h.protocol))),
            _ => return Err(harness_error("the harness did not say hello".into())),
        }
        s.send(&super::request::request(req.plan, &req.pids))?;
        match s.recv()? {
            Line::Attached(a) => {
                check_variant(req, &a.choice)?;
                let vias = a.probes.into_iter().map(via).collect();
                Ok(Box::new(HarnessAttached { session: s, vias }))
            }
            Line::Error(e) => Err(from_error(e)),
            _ => Err(harness_error("expected `attached` or `error` from the harness".into())),
        }
    }
}

/// A protocol `attached` entry as a [`Via`].
pub fn via(p: protocol::AttachedProbe) -> Via {
    Via {
        probe: p.name,
        via: if p.via == protocol::VIA_COMPAT { ViaKind::Compat } else { ViaKind::Native },
        bridge: (!p.bridge.is_empty()).then_some(p.bridge),
        prog_id: (p.prog_id != 0).then_some(p.prog_id),
    }
}

/// A loader that picked the object build itself must have picked what the
/// runner did: both read the kernel's BTF.
pub fn check_variant(req: &AttachRequest<'_>, choice: &protocol::ObjectChoice) -> Result<(), LoaderError> {
    if choice.object_variant.is_empty() {
        return Ok(());
    }
    let ours = match req.plan.variant {
        crate::run::artifacts::KfuncVariant::NoArg => "noarg",
        crate::run::artifacts::KfuncVariant::Ctx => "ctx",
    };
    if choice.object_variant != ours {
        return Err(harness_error(format!(
            "the loader picked the `{}` object ({}) but the runner picked `{ours}`: they read kernel BTF differently",
            choice.object_variant, choice.object_reason
        )));
    }
    Ok(())
}

struct HarnessAttached {
    session: Session,
    vias: Vec<Via>,
}

impl Attached for HarnessAttached {
    fn vias(&self) -> Vec<Via> {
        self.vias.clone()
    }

    fn drain(self: Box<Self>) -> Result<Drained, LoaderError> {
        let mut s = self.session;
        s.send(&protocol::Command { cmd: protocol::CMD_DRAIN.into() })?;
        let events = match s.recv()? {
            Line::Events(e) => e,
            Line::Error(e) => return Err(from_error(e)),
            _ => return Err(harness_error("expected `events` from the harness".into())),
        };
        match s.recv()? {
            Line::Done => {}
            _ => return Err(harness_error("expected `done` from the harness".into())),
        }
        // Closing stdin lets the harness exit; reading to EOF reaps it.
        s.stdin.take();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut s.lines, &mut rest);
        Ok(Drained { records: events.events.into_iter().map(|b| b.0).collect(), dropped: events.dropped, client: None, note: None })
    }
}
