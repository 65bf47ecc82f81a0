//! The cilium/ebpf loader: drives the Go harness (go-harness/) over the JSON
//! Lines protocol of go-harness/PROTOCOL.md. The harness returns raw records;
//! decoding and normalisation stay on this side, shared with libbpf.

use super::{AttachRequest, Attached, Drained, FailPhase, LibraryInfo, Loader, LoaderError, Via, ViaKind};
use crate::observe::abi::CONFIG_SECTION;
use crate::case::LoaderId;
use crate::judge::classify::{Classified, ErrorClass};
use crate::plan::PidFilter;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

pub const PROTOCOL: u32 = 1;

pub struct CiliumLoader {
    harness: PathBuf,
    version: String,
    /// Built for an explicitly requested version: always labelled with it.
    explicit: bool,
}

#[derive(Deserialize)]
struct VersionLine {
    protocol: u32,
    version: String,
}

impl CiliumLoader {
    /// A loader on an existing harness binary; asks it for its versions.
    pub fn new(harness: PathBuf) -> Result<Self, String> {
        let out = duct::cmd(&harness, ["version"])
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| format!("running {}: {e}", harness.display()))?;
        let v: VersionLine = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{} version: {e}: {}", harness.display(), String::from_utf8_lossy(&out.stderr)))?;
        if v.protocol != PROTOCOL {
            return Err(format!("harness speaks protocol {}, this probeconf speaks {PROTOCOL}: rebuild it", v.protocol));
        }
        Ok(CiliumLoader { harness, version: v.version, explicit: false })
    }

    /// Builds (if needed) and opens the harness for a cilium/ebpf version.
    pub fn build(version: Option<&str>) -> Result<Self, String> {
        let mut l = Self::new(crate::loaders::go_build::ensure_harness(version)?)?;
        l.explicit = version.is_some();
        Ok(l)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Labels the loader with its version even when it is the pinned one
    /// (it was asked for by version).
    pub fn set_explicit(&mut self, explicit: bool) {
        self.explicit = explicit;
    }
}

fn harness_error(detail: String) -> LoaderError {
    LoaderError { phase: FailPhase::Harness, probe: None, error: Classified { class: ErrorClass::Other, errno: None, detail } }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum Line {
    Hello { protocol: u32 },
    Attached {
        probes: Vec<AttachedProbe>,
        #[serde(default)]
        object_variant: Option<String>,
        #[serde(default)]
        object_reason: Option<String>,
    },
    Events { events: Vec<String>, dropped: u64 },
    Done,
    Error { phase: String, class: ErrorClass, #[serde(default)] probe: Option<String>, #[serde(default)] errno: Option<i32>, detail: String },
}

#[derive(Deserialize)]
struct AttachedProbe {
    name: String,
    via: ViaKind,
    #[serde(default)]
    bridge: String,
    #[serde(default)]
    prog_id: Option<u32>,
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

    fn send(&mut self, v: &serde_json::Value) -> Result<(), LoaderError> {
        let w = self.stdin.as_mut().ok_or_else(|| harness_error("harness stdin closed".into()))?;
        writeln!(w, "{v}").and_then(|_| w.flush()).map_err(|e| harness_error(format!("writing to the harness: {e}")))
    }

    fn recv(&mut self) -> Result<Line, LoaderError> {
        let mut s = String::new();
        loop {
            s.clear();
            let n = self.lines.read_line(&mut s).map_err(|e| harness_error(format!("reading from the harness: {e}")))?;
            if n == 0 {
                let status = self.lines.get_ref().try_wait().ok().flatten().map(|o| format!("{}", o.status)).unwrap_or_else(|| "still running".into());
                return Err(harness_error(format!("the harness ended without answering ({status}); stderr:\n{}", self.stderr_tail())));
            }
            if !s.trim().is_empty() {
                break;
            }
        }
        serde_json::from_str(&s).map_err(|e| harness_error(format!("protocol violation: {e}: {}", s.trim())))
    }
}

fn phase_of(phase: &str) -> FailPhase {
    match phase {
        "load" => FailPhase::Load,
        "attach" => FailPhase::Attach,
        "drain" => FailPhase::Drain,
        _ => FailPhase::Harness,
    }
}

#[derive(Serialize)]
struct Target<'a> {
    symbol: &'a str,
    offset: u64,
    cookie: u64,
}

fn request(req: &AttachRequest<'_>) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let probes: Vec<serde_json::Value> = req
        .plan
        .probes
        .iter()
        .map(|p| {
            let targets: Vec<Target<'_>> =
                p.targets.iter().map(|t| Target { symbol: t.symbol.as_deref().unwrap_or(""), offset: t.offset, cookie: t.cookie }).collect();
            let pid = match (p.kind.is_kernel(), p.pid_filter(&req.pids)) {
                (true, _) | (false, PidFilter::All) => json!({"scope": "all"}),
                (false, PidFilter::Pid { pid }) => json!({"scope": "pid", "pid": pid}),
            };
            let mut o = json!({
                "name": p.name,
                "program": p.program,
                "kind": p.kind.section(),
                "targets": targets,
                "pid": pid,
                "rodata": { CONFIG_SECTION: b64.encode(p.config(&req.pids).encode()) },
            });
            if let Some(b) = &p.binary {
                o["binary"] = json!(b);
            }
            // Probes whose program lives in another object than the session
            // build (plain recorders, USDT) name it.
            if p.object != req.plan.object && !p.kind.is_session() {
                o["object"] = json!(p.object);
            }
            if p.retprobe != p.kind.is_return_only() {
                o["retprobe"] = json!(p.retprobe);
            }
            if p.session != p.kind.is_session() {
                o["session"] = json!(p.session);
            }
            o
        })
        .collect();
    match &req.plan.selectable {
        // The harness picks the build from kernel BTF itself (its compat
        // layer); the runner checks it picked what the Rust side picked.
        Some((noarg, ctx)) => json!({ "protocol": PROTOCOL, "objects": {"noarg": noarg, "ctx": ctx}, "probes": probes }),
        None => json!({ "protocol": PROTOCOL, "object": req.plan.object, "probes": probes }),
    }
}

impl Loader for CiliumLoader {
    fn id(&self) -> LoaderId {
        LoaderId::Cilium
    }

    fn label(&self) -> String {
        if self.version == crate::loaders::go_build::PINNED_CILIUM && !self.explicit {
            "cilium".into()
        } else {
            format!("cilium@{}", self.version)
        }
    }

    fn library(&self) -> LibraryInfo {
        LibraryInfo { loader: LoaderId::Cilium, library: "github.com/cilium/ebpf".into(), version: self.version.clone() }
    }

    fn respawn(&self) -> Option<crate::run::attempts::LoaderSpec> {
        Some(crate::run::attempts::LoaderSpec::Cilium { harness: self.harness.clone(), explicit: self.explicit })
    }

    fn attach(&self, req: &AttachRequest<'_>) -> Result<Box<dyn Attached>, LoaderError> {
        let (stdin_r, stdin_w) = os_pipe::pipe().map_err(|e| harness_error(format!("pipe: {e}")))?;
        let stderr = tempfile::NamedTempFile::new().map_err(|e| harness_error(format!("tempfile: {e}")))?;
        let handle = duct::cmd(&self.harness, ["run"])
            .stdin_file(stdin_r)
            .stderr_path(stderr.path())
            .unchecked()
            .reader()
            .map_err(|e| harness_error(format!("starting {}: {e}", self.harness.display())))?;
        let mut s = Session { lines: BufReader::new(handle), stdin: Some(stdin_w), stderr };
        match s.recv()? {
            Line::Hello { protocol } if protocol == PROTOCOL => {}
            Line::Hello { protocol } => return Err(harness_error(format!("harness protocol {protocol}, want {PROTOCOL}"))),
            _ => return Err(harness_error("the harness did not say hello".into())),
        }
        s.send(&request(req))?;
        match s.recv()? {
            Line::Attached { probes, object_variant, object_reason } => {
                if let Some(v) = object_variant {
                    let ours = match req.plan.variant {
                        crate::run::artifacts::KfuncVariant::NoArg => "noarg",
                        crate::run::artifacts::KfuncVariant::Ctx => "ctx",
                    };
                    if v != ours {
                        return Err(harness_error(format!(
                            "the Go compat layer picked the `{v}` object ({}) but the Rust one picked `{ours}`: they read kernel BTF differently",
                            object_reason.unwrap_or_default()
                        )));
                    }
                }
                let vias = probes
                    .into_iter()
                    .map(|p| Via { probe: p.name, via: p.via, bridge: (!p.bridge.is_empty()).then_some(p.bridge), prog_id: p.prog_id })
                    .collect();
                Ok(Box::new(CiliumAttached { session: s, vias }))
            }
            Line::Error { phase, class, probe, errno, detail } => {
                Err(LoaderError { phase: phase_of(&phase), probe, error: Classified { class, errno, detail } })
            }
            _ => Err(harness_error("expected `attached` or `error` from the harness".into())),
        }
    }
}

struct CiliumAttached {
    session: Session,
    vias: Vec<Via>,
}

impl Attached for CiliumAttached {
    fn vias(&self) -> Vec<Via> {
        self.vias.clone()
    }

    fn drain(self: Box<Self>) -> Result<Drained, LoaderError> {
        let mut s = self.session;
        s.send(&json!({"cmd": "drain"}))?;
        let (events, dropped) = match s.recv()? {
            Line::Events { events, dropped } => (events, dropped),
            Line::Error { phase, class, probe, errno, detail } => {
                return Err(LoaderError { phase: phase_of(&phase), probe, error: Classified { class, errno, detail } })
            }
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
        let b64 = base64::engine::general_purpose::STANDARD;
        let records = events
            .iter()
            .map(|e| b64.decode(e).map_err(|err| harness_error(format!("event is not base64: {err}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Drained { records, dropped })
    }
}
