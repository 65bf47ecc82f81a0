//! The wire types of the probeconf ⇄ harness protocol (go-harness/PROTOCOL.md,
//! version 1): what the runner sends, what a harness answers, strict decoding
//! of the runner's lines and validation of a request's shape. A port of the Go
//! harness's `internal/protocol`, message for message where it matters.

use crate::classify::{Classified, ErrorClass};
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::Path;

/// The protocol version this harness speaks.
pub const PROTOCOL: u32 = 1;
/// The `library` of the hello and version lines.
pub const LIBRARY: &str = "libbpf";

/// Probe kinds: the ELF section names of the recorders, in PROTOCOL.md order.
pub const KINDS: [&str; 17] = [
    "uprobe",
    "uretprobe",
    "uprobe.multi",
    "uretprobe.multi",
    "uprobe.session",
    "kprobe",
    "kretprobe",
    "kprobe.multi",
    "kretprobe.multi",
    "kprobe.session",
    "usdt",
    "fentry",
    "fexit",
    "fsession",
    "fentry.multi",
    "fexit.multi",
    "fsession.multi",
];

/// A probe kind (validated against [`KINDS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Uprobe,
    Uretprobe,
    UprobeMulti,
    UretprobeMulti,
    UprobeSession,
    Kprobe,
    Kretprobe,
    KprobeMulti,
    KretprobeMulti,
    KprobeSession,
    Usdt,
    Fentry,
    Fexit,
    Fsession,
    FentryMulti,
    FexitMulti,
    FsessionMulti,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        use Kind::*;
        Some(match s {
            "uprobe" => Uprobe,
            "uretprobe" => Uretprobe,
            "uprobe.multi" => UprobeMulti,
            "uretprobe.multi" => UretprobeMulti,
            "uprobe.session" => UprobeSession,
            "kprobe" => Kprobe,
            "kretprobe" => Kretprobe,
            "kprobe.multi" => KprobeMulti,
            "kretprobe.multi" => KretprobeMulti,
            "kprobe.session" => KprobeSession,
            "usdt" => Usdt,
            "fentry" => Fentry,
            "fexit" => Fexit,
            "fsession" => Fsession,
            "fentry.multi" => FentryMulti,
            "fexit.multi" => FexitMulti,
            "fsession.multi" => FsessionMulti,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        KINDS[self as usize]
    }

    /// Probes a user-space binary (needs `binary`): the uprobe family and usdt.
    pub fn is_user(self) -> bool {
        self.as_str().starts_with('u')
    }

    /// One link per target (perf-event kinds) rather than one for all.
    pub fn single_link(self) -> bool {
        matches!(self, Kind::Uprobe | Kind::Uretprobe | Kind::Kprobe | Kind::Kretprobe)
    }

    /// BTF-based tracing (fentry, fexit, fsession and their multi forms):
    /// the program of a single-link kind is bound to its one target at load.
    pub fn is_tracing(self) -> bool {
        matches!(self, Kind::Fentry | Kind::Fexit | Kind::Fsession | Kind::FentryMulti | Kind::FexitMulti | Kind::FsessionMulti)
    }

    /// The tracing multi link kinds (attach types 59, 60, 61).
    pub fn is_tracing_multi(self) -> bool {
        matches!(self, Kind::FentryMulti | Kind::FexitMulti | Kind::FsessionMulti)
    }

    /// The default of `retprobe`.
    pub fn return_only(self) -> bool {
        matches!(self, Kind::Uretprobe | Kind::UretprobeMulti | Kind::Kretprobe | Kind::KretprobeMulti | Kind::Fexit | Kind::FexitMulti)
    }

    /// The default of `session`.
    pub fn is_session(self) -> bool {
        matches!(self, Kind::UprobeSession | Kind::KprobeSession | Kind::Fsession | Kind::FsessionMulti)
    }
}

/// Bytes that are standard base64 (with padding) on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Base64(pub Vec<u8>);

impl Serialize for Base64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map(Base64).map_err(serde::de::Error::custom)
    }
}

// ---- runner → harness ----

/// The one request line of a `run` session. Absent fields read as their zero
/// value, like Go's decoder, and validation then names them.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default)]
    pub protocol: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Objects>,
    #[serde(default)]
    pub probes: Vec<Probe>,
}

/// Both builds of the session recorders, by session-kfunc prototype.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Objects {
    #[serde(default)]
    pub noarg: String,
    #[serde(default)]
    pub ctx: String,
}

impl Objects {
    pub fn path(&self, variant: Variant) -> &str {
        match variant {
            Variant::NoArg => &self.noarg,
            Variant::Ctx => &self.ctx,
        }
    }
}

/// The session-kfunc prototype an object was built for (defined with the
/// kfunc bridge, [`crate::bridge::session_kfunc_prototype`]).
pub use crate::bridge::Variant;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub program: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub binary: String,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<Pid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retprobe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rodata: BTreeMap<String, Base64>,
}

impl Probe {
    /// The validated kind (validation refuses an unknown one).
    pub fn kind(&self) -> Kind {
        Kind::parse(&self.kind).expect("validated kind")
    }
    /// `retprobe`, or the kind's default.
    pub fn want_retprobe(&self) -> bool {
        self.retprobe.unwrap_or_else(|| self.kind().return_only())
    }
    /// `session`, or the kind's default.
    pub fn want_session(&self) -> bool {
        self.session.unwrap_or_else(|| self.kind().is_session())
    }
    /// The pid filter, `all` when absent.
    pub fn pid_filter(&self) -> Option<u32> {
        match &self.pid {
            Some(Pid { scope, pid: Some(p) }) if scope == SCOPE_PID => Some(*p),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub symbol: String,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub cookie: u64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pid {
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

pub const SCOPE_ALL: &str = "all";
pub const SCOPE_PID: &str = "pid";

/// A runner line after the request; only `{"cmd":"drain"}` exists.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    #[serde(default)]
    pub cmd: String,
}

pub const CMD_DRAIN: &str = "drain";

// ---- harness → runner ----

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hello {
    #[serde(rename = "type")]
    pub kind: String,
    pub protocol: u32,
    pub library: String,
    pub version: String,
}

/// Which build a harness picked from `objects`, and why.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectChoice {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object_variant: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object_reason: String,
}

pub const VIA_NATIVE: &str = "native";
pub const VIA_COMPAT: &str = "compat";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachedProbe {
    pub name: String,
    /// `native` or `compat`.
    pub via: String,
    /// The registry id of the bridge, empty when native.
    pub bridge: String,
    /// The kernel's id of the probe's program (omitted when unknown).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prog_id: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attached {
    #[serde(rename = "type")]
    pub kind: String,
    pub probes: Vec<AttachedProbe>,
    #[serde(flatten)]
    pub choice: ObjectChoice,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Events {
    #[serde(rename = "type")]
    pub kind: String,
    pub events: Vec<Base64>,
    pub dropped: u64,
}

/// The phase of an error line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Protocol,
    Load,
    Attach,
    Drain,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Protocol => "protocol",
            Phase::Load => "load",
            Phase::Attach => "attach",
            Phase::Drain => "drain",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorLine {
    #[serde(rename = "type")]
    pub kind: String,
    pub phase: Phase,
    pub class: ErrorClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    pub detail: String,
    #[serde(flatten)]
    pub choice: ObjectChoice,
}

/// An error that knows where it happened: every step returns one, so the
/// error line can name the phase and the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub phase: Phase,
    pub probe: Option<String>,
    pub error: Classified,
    /// Set once a build was picked from `objects`.
    pub choice: ObjectChoice,
}

impl Failure {
    pub fn new(phase: Phase, probe: Option<&Probe>, error: Classified) -> Self {
        Failure { phase, probe: probe.map(|p| p.name.clone()), error, choice: ObjectChoice::default() }
    }

    /// The error line of this failure.
    pub fn line(&self) -> ErrorLine {
        let choice = &self.choice;
        ErrorLine {
            kind: "error".into(),
            phase: self.phase,
            class: self.error.class,
            probe: self.probe.clone(),
            errno: self.error.errno.filter(|e| *e != 0),
            detail: self.error.detail.clone(),
            choice: choice.clone(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.probe {
            Some(p) => write!(f, "{}: probe {p}: {} ({})", self.phase.as_str(), self.error.detail, self.error.class),
            None => write!(f, "{}: {} ({})", self.phase.as_str(), self.error.detail, self.error.class),
        }
    }
}

pub(crate) fn invalid(detail: impl Into<String>) -> Classified {
    Classified { class: ErrorClass::Invalid, errno: None, detail: detail.into() }
}

fn protocol_invalid(detail: impl Into<String>) -> Failure {
    Failure::new(Phase::Protocol, None, invalid(detail))
}

/// Decodes exactly one JSON object: unknown fields, trailing data and wrong
/// types are errors (a typo in the runner's encoder must fail loudly).
fn decode_strict<T: serde::de::DeserializeOwned>(line: &str, what: &str) -> Result<T, Failure> {
    serde_json::from_str(line.trim()).map_err(|e| protocol_invalid(format!("{what}: malformed JSON: {e}")))
}

/// Decodes and validates the request line.
pub fn decode_request(line: &str) -> Result<Request, Failure> {
    let req: Request = decode_strict(line, "request")?;
    req.validate().map_err(|e| Failure { error: Classified { detail: format!("request: {}", e.error.detail), ..e.error }, ..e })?;
    Ok(req)
}

/// Decodes a command line and checks that it is a known command.
pub fn decode_command(line: &str) -> Result<Command, Failure> {
    let cmd: Command = decode_strict(line, "command")?;
    if cmd.cmd != CMD_DRAIN {
        return Err(protocol_invalid(format!("command: unknown cmd {:?} (want {CMD_DRAIN:?})", cmd.cmd)));
    }
    Ok(cmd)
}

impl Request {
    /// Checks the request's shape: everything that can be known without
    /// touching the object, the binaries or the kernel (phase `protocol`).
    pub fn validate(&self) -> Result<(), Failure> {
        if self.protocol != PROTOCOL {
            return Err(protocol_invalid(format!(
                "protocol {} not supported (this harness speaks {PROTOCOL})",
                self.protocol
            )));
        }
        match (&self.object, &self.objects) {
            (o, None) if o.is_empty() => return Err(protocol_invalid("one of the fields object and objects is required")),
            (o, Some(_)) if !o.is_empty() => return Err(protocol_invalid("fields object and objects are exclusive: send one")),
            (_, Some(os)) if os.noarg.is_empty() || os.ctx.is_empty() => {
                return Err(protocol_invalid("objects: fields noarg and ctx are both required"))
            }
            _ => {}
        }
        if self.probes.is_empty() {
            return Err(protocol_invalid("field probes is empty"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.probes.iter().enumerate() {
            if p.name.is_empty() {
                return Err(protocol_invalid(format!("probes[{i}]: field name is required")));
            }
            if !seen.insert(p.name.as_str()) {
                return Err(protocol_invalid(format!("probes[{i}]: duplicate probe name {:?}", p.name)));
            }
            p.validate().map_err(|d| protocol_invalid(format!("probe {}: {d}", p.name)))?;
        }
        Ok(())
    }

    /// Checks that every object exists and is a regular file (with `objects`:
    /// both builds), so a wrong path is reported as such (phase `protocol`:
    /// `not-found` with the errno, `invalid` for a directory) and not as an
    /// ELF error. Probed binaries are the library's to check, at attach.
    pub fn check_objects(&self) -> Result<(), Failure> {
        let check = |what: String, path: &str| -> Result<(), Failure> {
            regular_file(path).map_err(|mut c| {
                c.detail = format!("{what}: {}", c.detail);
                Failure::new(Phase::Protocol, None, c)
            })
        };
        match &self.objects {
            None => check("object".into(), &self.object)?,
            Some(os) => {
                for v in [Variant::NoArg, Variant::Ctx] {
                    check(format!("objects.{}", v.as_str()), os.path(v))?;
                }
            }
        }
        for p in &self.probes {
            if !p.object.is_empty() {
                check(format!("probe {}: object", p.name), &p.object)?;
            }
        }
        Ok(())
    }
}

fn regular_file(path: &str) -> Result<(), Classified> {
    match std::fs::metadata(path) {
        Err(e) => {
            let errno = e.raw_os_error();
            Err(Classified {
                class: errno.map(crate::classify::classify_errno).unwrap_or(ErrorClass::Other),
                errno,
                detail: format!("stat {path}: {e}"),
            })
        }
        Ok(m) if !m.is_file() => Err(invalid(format!("{path} is not a regular file"))),
        Ok(_) => Ok(()),
    }
}

impl Probe {
    fn validate(&self) -> Result<(), String> {
        if self.program.is_empty() {
            return Err("field program is required".into());
        }
        let Some(kind) = Kind::parse(&self.kind) else {
            return Err(format!("unknown kind {:?} (valid kinds: {})", self.kind, KINDS.join(", ")));
        };
        if self.targets.is_empty() {
            return Err("field targets is empty".into());
        }
        if kind.single_link() && self.session == Some(true) {
            return Err(format!(
                "kind {} creates one perf-event link per target: field session must be absent or false",
                kind.as_str()
            ));
        }
        if !self.object.is_empty() && !Path::new(&self.object).is_absolute() {
            return Err(format!("object {:?}: must be an absolute path", self.object));
        }
        if kind.is_tracing() {
            // The kind says where the program runs; the link flags of
            // kprobe/uprobe multi links do not apply.
            if self.session.is_some_and(|s| s != kind.is_session()) || self.retprobe.is_some_and(|r| r != kind.return_only()) {
                return Err(format!(
                    "kind {}: fields session and retprobe must be absent or the kind's own ({}, {})",
                    kind.as_str(),
                    kind.is_session(),
                    kind.return_only()
                ));
            }
            if !kind.is_tracing_multi() && self.targets.len() != 1 {
                return Err(format!(
                    "kind {} is bound to one kernel function at load: exactly one target (found {})",
                    kind.as_str(),
                    self.targets.len()
                ));
            }
        }
        if kind == Kind::Usdt {
            if self.session == Some(true) {
                return Err("kind usdt has no session: field session must be absent or false".into());
            }
            if self.retprobe == Some(true) {
                return Err("kind usdt fires at the site only: field retprobe must be absent or false".into());
            }
            for (i, t) in self.targets.iter().enumerate() {
                match t.symbol.split_once(':') {
                    Some((p, n)) if !p.is_empty() && !n.is_empty() => {}
                    _ => return Err(format!("targets[{i}]: kind usdt: symbol {:?} must be provider:name", t.symbol)),
                }
                if t.offset != 0 {
                    return Err(format!("targets[{i}]: kind usdt: offset must be 0 (the sites come from .note.stapsdt)"));
                }
            }
        }
        if kind.is_user() {
            if self.binary.is_empty() {
                return Err(format!("kind {} needs field binary", kind.as_str()));
            }
            if !Path::new(&self.binary).is_absolute() {
                return Err(format!("binary {:?}: must be an absolute path", self.binary));
            }
            for (i, t) in self.targets.iter().enumerate() {
                if t.symbol.is_empty() && t.offset == 0 {
                    return Err(format!("targets[{i}]: empty symbol needs a non-zero absolute file offset"));
                }
            }
        } else {
            if !self.binary.is_empty() {
                return Err(format!("kind {} is a kernel probe: field binary must be absent", kind.as_str()));
            }
            for (i, t) in self.targets.iter().enumerate() {
                if t.symbol.is_empty() {
                    return Err(format!("targets[{i}]: kind {} needs a kernel symbol", kind.as_str()));
                }
                if t.offset != 0 {
                    return Err(format!(
                        "targets[{i}]: kind {}: offset must be 0 (kernel probes attach at the function entry)",
                        kind.as_str()
                    ));
                }
            }
        }
        if let Some(pid) = &self.pid {
            match pid.scope.as_str() {
                SCOPE_ALL if pid.pid.is_some() => return Err(r#"pid: scope "all" takes no pid"#.into()),
                SCOPE_ALL => {}
                SCOPE_PID => {
                    if pid.pid.unwrap_or(0) == 0 {
                        return Err(r#"pid: scope "pid" needs a non-zero pid"#.into());
                    }
                    if !kind.is_user() {
                        return Err(format!("pid: kind {} has no pid filter (use rodata filter_tgid)", kind.as_str()));
                    }
                }
                other => return Err(format!(r#"pid: unknown scope {other:?} (valid scopes: "all", "pid")"#)),
            }
        }
        for (name, data) in &self.rodata {
            if name.is_empty() || data.0.is_empty() {
                return Err(format!("rodata: section {name:?}: name and bytes are required"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"protocol":1,"object":"/o.bpf.o","probes":[{"name":"s","program":"pc_uprobe_session","kind":"uprobe.session","binary":"/bin/t","targets":[{"symbol":"pc_leaf","offset":0,"cookie":17}],"pid":{"scope":"pid","pid":12},"rodata":{".rodata.pc_cfg":"AAEC"}}]}"#;

    #[test]
    fn good_request() {
        let r = decode_request(GOOD).unwrap();
        let p = &r.probes[0];
        assert_eq!(p.kind(), Kind::UprobeSession);
        assert!(p.want_session() && !p.want_retprobe());
        assert_eq!(p.pid_filter(), Some(12));
        assert_eq!(p.rodata[".rodata.pc_cfg"].0, vec![0, 1, 2]);
    }

    #[test]
    fn strict_decoding() {
        for (line, want) in [
            ("{", "malformed JSON"),
            (r#"{"protocol":1,"object":"/o","probes":[],"extra":1}"#, "unknown field"),
            (r#"{"protocol":1,"object":"/o","probes":[]} {}"#, "trailing"),
            (r#"{"protocol":"1"}"#, "invalid type"),
            (r#"{"protocol":2,"object":"/o","probes":[]}"#, "protocol 2 not supported"),
            (r#"{"protocol":1,"probes":[]}"#, "one of the fields object and objects"),
            (r#"{"protocol":1,"object":"/o","probes":[]}"#, "field probes is empty"),
            (r#"{"protocol":1,"objects":{"noarg":"/a"},"probes":[]}"#, "noarg and ctx are both required"),
            (r#"{"protocol":1,"objects":{"noarg":"/a","ctx":"/b","x":"/c"},"probes":[]}"#, "unknown field"),
        ] {
            let e = decode_request(line).unwrap_err();
            assert_eq!((e.phase, e.error.class), (Phase::Protocol, ErrorClass::Invalid), "{line}");
            assert!(e.error.detail.contains(want), "{line}: {}", e.error.detail);
        }
    }

    #[test]
    fn probe_validation() {
        let base: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = base.clone();
            f(&mut v["probes"][0]);
            decode_request(&v.to_string()).map(|_| ()).map_err(|e| e.error.detail)
        };
        assert!(with(&|p| p["kind"] = "nope".into()).unwrap_err().contains("valid kinds: uprobe, uretprobe"));
        assert!(with(&|p| p["binary"] = "rel".into()).unwrap_err().contains("absolute"));
        assert!(with(&|p| {
            p["kind"] = "uprobe".into();
            p["session"] = true.into()
        })
        .unwrap_err()
        .contains("field session must be absent or false"));
        assert!(with(&|p| p["pid"] = serde_json::json!({"scope":"pid"})).unwrap_err().contains("non-zero pid"));
        assert!(with(&|p| p["targets"][0]["symbol"] = "".into()).unwrap_err().contains("non-zero absolute file offset"));
        assert!(with(&|p| {
            p["kind"] = "kprobe".into();
            p.as_object_mut().unwrap().remove("binary");
            p["pid"] = serde_json::json!({"scope":"all"});
        })
        .is_ok());
    }

    #[test]
    fn output_lines() {
        let a = Attached {
            kind: "attached".into(),
            probes: vec![AttachedProbe { name: "s".into(), via: VIA_NATIVE.into(), bridge: String::new(), prog_id: 0 }],
            choice: ObjectChoice::default(),
        };
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"type":"attached","probes":[{"name":"s","via":"native","bridge":""}]}"#);
        let mut f = Failure::new(Phase::Load, None, invalid("x"));
        f.choice = ObjectChoice { object_variant: "noarg".into(), object_reason: "r".into() };
        let e = f.line();
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"error","phase":"load","class":"invalid","detail":"x","object_variant":"noarg","object_reason":"r"}"#
        );
    }
}
