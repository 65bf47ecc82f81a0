//! The case format: one YAML file per probe scenario (see README "Case format").
//! Parsing is strict (`deny_unknown_fields`, closed enums), and every error names
//! the file, line and column, and what was expected there.

use crate::judge::classify::ErrorClass;
use crate::probing::features::Feature;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The kind of probe, spelled as its ELF section name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProbeKind {
    #[serde(rename = "uprobe")]
    Uprobe,
    #[serde(rename = "uretprobe")]
    Uretprobe,
    #[serde(rename = "uprobe.multi")]
    UprobeMulti,
    #[serde(rename = "uretprobe.multi")]
    UretprobeMulti,
    #[serde(rename = "uprobe.session")]
    UprobeSession,
    #[serde(rename = "kprobe")]
    Kprobe,
    #[serde(rename = "kretprobe")]
    Kretprobe,
    #[serde(rename = "kprobe.multi")]
    KprobeMulti,
    #[serde(rename = "kretprobe.multi")]
    KretprobeMulti,
    #[serde(rename = "kprobe.session")]
    KprobeSession,
    /// A USDT site (`symbol: provider:name`), through libbpf's usdt.bpf.h.
    #[serde(rename = "usdt")]
    Usdt,
    /// BTF-based tracing of a kernel function at entry (a BPF trampoline).
    #[serde(rename = "fentry")]
    Fentry,
    #[serde(rename = "fexit")]
    Fexit,
    /// One tracing program at entry and return (BPF_TRACE_FSESSION, 7.0).
    #[serde(rename = "fsession")]
    Fsession,
    /// The tracing multi link: one program on many functions, per-target cookies.
    #[serde(rename = "fentry.multi")]
    FentryMulti,
    #[serde(rename = "fexit.multi")]
    FexitMulti,
    #[serde(rename = "fsession.multi")]
    FsessionMulti,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 17] = [
        ProbeKind::Uprobe,
        ProbeKind::Uretprobe,
        ProbeKind::UprobeMulti,
        ProbeKind::UretprobeMulti,
        ProbeKind::UprobeSession,
        ProbeKind::Kprobe,
        ProbeKind::Kretprobe,
        ProbeKind::KprobeMulti,
        ProbeKind::KretprobeMulti,
        ProbeKind::KprobeSession,
        ProbeKind::Usdt,
        ProbeKind::Fentry,
        ProbeKind::Fexit,
        ProbeKind::Fsession,
        ProbeKind::FentryMulti,
        ProbeKind::FexitMulti,
        ProbeKind::FsessionMulti,
    ];

    pub fn section(self) -> &'static str {
        match self {
            ProbeKind::Uprobe => "uprobe",
            ProbeKind::Uretprobe => "uretprobe",
            ProbeKind::UprobeMulti => "uprobe.multi",
            ProbeKind::UretprobeMulti => "uretprobe.multi",
            ProbeKind::UprobeSession => "uprobe.session",
            ProbeKind::Kprobe => "kprobe",
            ProbeKind::Kretprobe => "kretprobe",
            ProbeKind::KprobeMulti => "kprobe.multi",
            ProbeKind::KretprobeMulti => "kretprobe.multi",
            ProbeKind::KprobeSession => "kprobe.session",
            ProbeKind::Usdt => "usdt",
            ProbeKind::Fentry => "fentry",
            ProbeKind::Fexit => "fexit",
            ProbeKind::Fsession => "fsession",
            ProbeKind::FentryMulti => "fentry.multi",
            ProbeKind::FexitMulti => "fexit.multi",
            ProbeKind::FsessionMulti => "fsession.multi",
        }
    }

    /// The recorder program in bpf/recorders.bpf.c.
    pub fn program(self) -> &'static str {
        match self {
            ProbeKind::Uprobe => "pc_uprobe",
            ProbeKind::Uretprobe => "pc_uretprobe",
            ProbeKind::UprobeMulti => "pc_uprobe_multi",
            ProbeKind::UretprobeMulti => "pc_uretprobe_multi",
            ProbeKind::UprobeSession => "pc_uprobe_session",
            ProbeKind::Kprobe => "pc_kprobe",
            ProbeKind::Kretprobe => "pc_kretprobe",
            ProbeKind::KprobeMulti => "pc_kprobe_multi",
            ProbeKind::KretprobeMulti => "pc_kretprobe_multi",
            ProbeKind::KprobeSession => "pc_kprobe_session",
            ProbeKind::Usdt => "pc_usdt",
            ProbeKind::Fentry => "pc_fentry",
            ProbeKind::Fexit => "pc_fexit",
            ProbeKind::Fsession => "pc_fsession",
            ProbeKind::FentryMulti => "pc_fentry_multi",
            ProbeKind::FexitMulti => "pc_fexit_multi",
            ProbeKind::FsessionMulti => "pc_fsession_multi",
        }
    }

    /// The deliberate large-frame twin of [`ProbeKind::program`] (`record:
    /// {stack_frame: large}`): the pre-fix recorder shape, a 144-byte event on
    /// the BPF stack copied into the ring buffer, which from 6.13 runs on the
    /// kernel's per-CPU private stack (see src/probing/priv_stack.rs, cases/findings/).
    pub fn large_frame_program(self) -> &'static str {
        match self {
            ProbeKind::Uprobe => "pc_uprobe_large",
            ProbeKind::Uretprobe => "pc_uretprobe_large",
            ProbeKind::UprobeMulti => "pc_uprobe_multi_large",
            ProbeKind::UretprobeMulti => "pc_uretprobe_multi_large",
            ProbeKind::UprobeSession => "pc_uprobe_session_large",
            ProbeKind::Kprobe => "pc_kprobe_large",
            ProbeKind::Kretprobe => "pc_kretprobe_large",
            ProbeKind::KprobeMulti => "pc_kprobe_multi_large",
            ProbeKind::KretprobeMulti => "pc_kretprobe_multi_large",
            ProbeKind::KprobeSession => "pc_kprobe_session_large",
            ProbeKind::Usdt => "pc_usdt_large",
            ProbeKind::Fentry => "pc_fentry_large",
            ProbeKind::Fexit => "pc_fexit_large",
            ProbeKind::Fsession => "pc_fsession_large",
            ProbeKind::FentryMulti => "pc_fentry_multi_large",
            ProbeKind::FexitMulti => "pc_fexit_multi_large",
            ProbeKind::FsessionMulti => "pc_fsession_multi_large",
        }
    }

    pub fn is_kernel(self) -> bool {
        matches!(
            self,
            ProbeKind::Kprobe | ProbeKind::Kretprobe | ProbeKind::KprobeMulti | ProbeKind::KretprobeMulti | ProbeKind::KprobeSession
        ) || self.is_tracing()
    }

    /// BTF-based tracing programs (fentry, fexit, fsession and their multi
    /// forms): the target is a kernel function named by its BTF id, and a
    /// single-link kind's program is bound to its one target at load.
    pub fn is_tracing(self) -> bool {
        matches!(
            self,
            ProbeKind::Fentry
                | ProbeKind::Fexit
                | ProbeKind::Fsession
                | ProbeKind::FentryMulti
                | ProbeKind::FexitMulti
                | ProbeKind::FsessionMulti
        )
    }

    pub fn is_session(self) -> bool {
        matches!(self, ProbeKind::UprobeSession | ProbeKind::KprobeSession | ProbeKind::Fsession | ProbeKind::FsessionMulti)
    }

    /// One link for all targets (multi and session) rather than one per target.
    pub fn is_multi_link(self) -> bool {
        matches!(
            self,
            ProbeKind::UprobeMulti
                | ProbeKind::UretprobeMulti
                | ProbeKind::UprobeSession
                | ProbeKind::KprobeMulti
                | ProbeKind::KretprobeMulti
                | ProbeKind::KprobeSession
                | ProbeKind::FentryMulti
                | ProbeKind::FexitMulti
                | ProbeKind::FsessionMulti
        )
    }

    pub fn is_return_only(self) -> bool {
        matches!(
            self,
            ProbeKind::Uretprobe | ProbeKind::UretprobeMulti | ProbeKind::Kretprobe | ProbeKind::KretprobeMulti | ProbeKind::Fexit | ProbeKind::FexitMulti
        )
    }

    /// The kernel features any case with this kind needs, implied by the kind.
    pub fn implied_features(self) -> &'static [Feature] {
        match self {
            ProbeKind::Uprobe => &[Feature::Uprobe],
            ProbeKind::Uretprobe => &[Feature::Uretprobe],
            ProbeKind::UprobeMulti | ProbeKind::UretprobeMulti => &[Feature::UprobeMulti],
            ProbeKind::UprobeSession => &[Feature::UprobeSession, Feature::SessionKfuncs],
            ProbeKind::Kprobe | ProbeKind::Kretprobe => &[Feature::Kprobe],
            ProbeKind::KprobeMulti | ProbeKind::KretprobeMulti => &[Feature::KprobeMulti],
            ProbeKind::KprobeSession => &[Feature::KprobeSession, Feature::SessionKfuncs],
            ProbeKind::Usdt => &[Feature::Uprobe],
            ProbeKind::Fentry => &[Feature::Fentry],
            ProbeKind::Fexit => &[Feature::Fexit],
            ProbeKind::Fsession => &[Feature::Fsession],
            ProbeKind::FentryMulti | ProbeKind::FexitMulti => &[Feature::TracingMulti],
            ProbeKind::FsessionMulti => &[Feature::TracingMulti, Feature::Fsession],
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.section())
    }
}

/// Which processes a probe's link covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PidScope {
    /// The case's target process (P0) only.
    #[default]
    Target,
    /// The other process (P1), which runs `run_other`.
    Other,
    /// Every process.
    All,
}

/// What a session entry writes into its session cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CookieWrite {
    #[default]
    None,
    /// This constant.
    Const(u64),
    /// arg0 of the invocation.
    Arg0,
    /// This constant plus arg0.
    ConstPlusArg0(u64),
    /// bpf_get_attach_cookie().
    AttachCookie,
}

/// When a session entry returns 1, skipping that invocation's return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReturn {
    #[default]
    Never,
    Always,
    OddArg0,
    EvenArg0,
    Arg0Eq(u64),
    Arg0Lt(u64),
}

/// Knob values are written `name` or `{name: number}` (a one-key map), which
/// reads better than YAML tags. The visitor lists every valid form on error.
macro_rules! knob_deserialize {
    ($ty:ident, what = $what:literal, units = [$($u:literal => $uv:expr),*], valued = [$($v:literal => $vv:expr),*]) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                const FORMS: &str = concat!($("`", $u, "`, ",)* $("`{", $v, ": N}`, ",)*);
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} as one of {}", $what, FORMS.trim_end_matches(", "))
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$ty, E> {
                        match s {
                            $($u => Ok($uv),)*
                            _ => Err(E::custom(format!("unknown {} `{s}`, expected one of {}", $what, FORMS.trim_end_matches(", ")))),
                        }
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<$ty, A::Error> {
                        let Some(key) = m.next_key::<String>()? else {
                            return Err(serde::de::Error::custom(format!("empty map: expected {}", FORMS.trim_end_matches(", "))));
                        };
                        let n: u64 = m.next_value()?;
                        if m.next_key::<String>()?.is_some() {
                            return Err(serde::de::Error::custom("expected a map with exactly one key"));
                        }
                        match key.as_str() {
                            $($v => Ok($vv(n)),)*
                            _ => Err(serde::de::Error::custom(format!("unknown {} `{{{key}: N}}`, expected one of {}", $what, FORMS.trim_end_matches(", ")))),
                        }
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

knob_deserialize!(CookieWrite, what = "session_cookie",
    units = ["none" => CookieWrite::None, "arg0" => CookieWrite::Arg0, "attach-cookie" => CookieWrite::AttachCookie],
    valued = ["const" => CookieWrite::Const, "const-plus-arg0" => CookieWrite::ConstPlusArg0]);
knob_deserialize!(SkipReturn, what = "skip_return",
    units = ["never" => SkipReturn::Never, "always" => SkipReturn::Always, "odd-arg0" => SkipReturn::OddArg0, "even-arg0" => SkipReturn::EvenArg0],
    valued = ["arg0-eq" => SkipReturn::Arg0Eq, "arg0-lt" => SkipReturn::Arg0Lt]);

/// Which shape of recorder program a probe loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StackFrame {
    /// The recorder every case uses: the event is built in its ring-buffer
    /// reservation, every frame far below the kernel's private-stack threshold.
    #[default]
    Small,
    /// The deliberate pre-fix shape (a 144-byte event on the BPF stack, then
    /// copied): a frame that runs on the kernel's per-CPU private stack from
    /// 6.13 on, shared by preempted uprobe runs. For cases/findings/ only.
    Large,
}

/// Recorder behaviour knobs (struct pc_config). With per-target behaviour a
/// target's own `record:` ([`TargetRecord`]) overrides `session_cookie` and
/// `skip_return` for that target; the other knobs stay probe-wide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Record {
    #[serde(default)]
    pub session_cookie: CookieWrite,
    #[serde(default)]
    pub skip_return: SkipReturn,
    /// Record only the target's thread group, in BPF (default: on for kprobes,
    /// off for uprobes, whose link pid filter is the thing under test).
    #[serde(default)]
    pub filter_tgid: Option<bool>,
    /// How many arguments the trace shows at entry (0–2). Default: 2 for user
    /// functions (probe-target's all take two), 0 for kernel functions (a
    /// syscall wrapper's arg0 is a pt_regs pointer, different every run).
    #[serde(default)]
    pub args: Option<u8>,
    /// Width of the probed function's return value in bits (64 or 32). A
    /// function returning `int` leaves the upper half of the register
    /// undefined (7.x's do_sys_openat2 returns int, 6.x's returned long).
    /// 0: the value is not part of the semantics under test and differs
    /// between runs (bpf_ktime_get_ns): the trace shows `=> *`.
    #[serde(default)]
    pub ret_width: Option<u8>,
    /// Add the program's recursion-miss count to the trace
    /// (`NAME recursion_misses=N`): runs the kernel skipped because another
    /// BPF program was running on the CPU.
    #[serde(default)]
    pub recursion_misses: bool,
    /// `small` (default) or `large`: which recorder program shape to load
    /// ([`StackFrame`]). Every kind has both.
    #[serde(default)]
    pub stack_frame: StackFrame,
}

/// Per-target behaviour: the tetragon pattern. tetragon attaches one
/// kprobe.multi/uprobe.multi link over many functions, each target's attach
/// cookie the index of that hook's config, and its program uses
/// `bpf_get_attach_cookie()` as an index into its config. A target with a
/// `record:` of its own puts its probe in that mode:
///
/// ```yaml
/// targets:
///   - {symbol: pc_leaf, record: {session_cookie: {const: 0x10}, skip_return: always}}
///   - {symbol: pc_nop5, record: {session_cookie: arg0}}
///   - {symbol: pc_nop1}                    # the probe's own `record:` knobs
/// ```
///
/// * The recorder gets a table (`struct pc_targets`, bpf/probeconf_abi.h) with
///   one entry per target, in order; target *i*'s cookie is *i*, its index.
///   An entry is the probe's `record:` knobs with the target's own on top (a
///   knob the target does not name is the probe's); a target without
///   `record:` gets the probe's knobs.
/// * A target with `record:` may give `cookie:` only as its index. A target
///   without one may give its index, or a cookie past the table (>= the
///   number of targets): no entry then, and the recorder falls back to the
///   probe's knobs and says so in the trace (`cfg=fallback`). Any other
///   cookie is refused: it would run another target's behaviour.
/// * At most [`TARGETS_MAX`] targets (the BPF table's size).
/// * Kinds: the kprobe and uprobe multi and session kinds (one link, many
///   targets). `session_cookie` and `skip_return` are for sessions, as at probe
///   level; `tag` for the plain multi kinds (entry and return programs): the
///   recorder copies it into every event of that target (`tag=0xN`), which is
///   how a trace shows which entry a plain program used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetRecord {
    /// What a session entry of this target writes into its cookie
    /// (absent: the probe's `session_cookie`).
    #[serde(default)]
    pub session_cookie: Option<CookieWrite>,
    /// When a session entry of this target skips its return (absent: the
    /// probe's `skip_return`).
    #[serde(default)]
    pub skip_return: Option<SkipReturn>,
    /// Plain multi kinds: a value the recorder puts into this target's events.
    #[serde(default)]
    pub tag: Option<u64>,
}

/// Entries of the per-target table (`PC_TARGETS_MAX`).
pub const TARGETS_MAX: usize = crate::observe::abi::TARGETS_MAX;

/// The kinds that take per-target behaviour (a target's own `record:`).
pub const PER_TARGET_KINDS: [ProbeKind; 6] = [
    ProbeKind::UprobeMulti,
    ProbeKind::UretprobeMulti,
    ProbeKind::UprobeSession,
    ProbeKind::KprobeMulti,
    ProbeKind::KretprobeMulti,
    ProbeKind::KprobeSession,
];

/// One place to probe, with its attach cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Function symbol (user ELF symbol, or kernel function for k*probes).
    #[serde(default)]
    pub symbol: Option<String>,
    /// Offset from the symbol, or an absolute file offset without a symbol.
    #[serde(default)]
    pub offset: u64,
    /// `bpf_get_attach_cookie()` value; absent: 0, or with per-target
    /// behaviour the target's index (filled in by [`Case::parse`]).
    #[serde(default)]
    pub cookie: Option<u64>,
    /// Per-target behaviour ([`TargetRecord`]): this target's own knobs.
    #[serde(default)]
    pub record: Option<TargetRecord>,
}

impl Target {
    /// The attach cookie the loaders pass.
    pub fn cookie(&self) -> u64 {
        self.cookie.unwrap_or(0)
    }
}

fn default_binary() -> String {
    "probe-target".into()
}

/// One attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Short name used in traces (`s1`, `entry`, ...).
    pub name: String,
    pub kind: ProbeKind,
    /// `probe-target`, `libprobetarget.so`, or a path relative to the case file.
    #[serde(default = "default_binary")]
    pub binary: String,
    pub targets: Vec<Target>,
    #[serde(default)]
    pub pid: PidScope,
    /// Ask for a return probe on a multi/session link (the flag, not the kind).
    #[serde(default)]
    pub retprobe: Option<bool>,
    /// Ask for a session link on a multi kind (the flag, not the kind).
    #[serde(default)]
    pub session: Option<bool>,
    #[serde(default)]
    pub record: Record,
}

impl Probe {
    /// Per-target behaviour: some target has a `record:` of its own
    /// ([`TargetRecord`]); the recorder then selects each hit's knobs by its
    /// attach cookie.
    pub fn per_target(&self) -> bool {
        self.targets.iter().any(|t| t.record.is_some())
    }
}

/// Documentation of where a behaviour appeared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Since {
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub libbpf: Option<String>,
    #[serde(default)]
    pub cilium: Option<String>,
    #[serde(default)]
    pub bpftrace: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorPhase {
    Load,
    Attach,
}

impl fmt::Display for ErrorPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorPhase::Load => "load",
            ErrorPhase::Attach => "attach",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedError {
    pub phase: ErrorPhase,
    pub class: ErrorClass,
}

/// Which loader an expectation variant applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoaderId {
    Libbpf,
    Cilium,
    /// bpftrace, a client that loads its own programs from a script
    /// (`--loader bpftrace@0.27.1`, src/loaders/bpftrace.rs).
    Bpftrace,
    /// A third-party harness (`--loader NAME=COMMAND`): no case variant names it.
    Other,
}

impl LoaderId {
    pub fn as_str(self) -> &'static str {
        match self {
            LoaderId::Libbpf => "libbpf",
            LoaderId::Cilium => "cilium",
            LoaderId::Bpftrace => "bpftrace",
            LoaderId::Other => "other",
        }
    }
}

impl fmt::Display for LoaderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kernel version range like `>=6.10,<6.14`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionRange {
    pub text: String,
    bounds: Vec<(Cmp, KernelVersion)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
enum Cmp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

/// `major.minor.patch` of a kernel release string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KernelVersion(pub u32, pub u32, pub u32);

impl KernelVersion {
    /// Parses the leading `X.Y[.Z]` of a release such as `6.18.44-fc-v657`.
    pub fn parse(release: &str) -> Option<Self> {
        let head: String = release.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let mut it = head.split('.').filter(|s| !s.is_empty()).map(|s| s.parse::<u32>());
        let major = it.next()?.ok()?;
        let minor = it.next().unwrap_or(Ok(0)).ok()?;
        let patch = it.next().unwrap_or(Ok(0)).ok()?;
        Some(KernelVersion(major, minor, patch))
    }
}

impl VersionRange {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bounds = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (cmp, rest) = if let Some(r) = part.strip_prefix(">=") {
                (Cmp::Ge, r)
            } else if let Some(r) = part.strip_prefix("<=") {
                (Cmp::Le, r)
            } else if let Some(r) = part.strip_prefix('>') {
                (Cmp::Gt, r)
            } else if let Some(r) = part.strip_prefix('<') {
                (Cmp::Lt, r)
            } else if let Some(r) = part.strip_prefix('=') {
                (Cmp::Eq, r)
            } else {
                return Err(format!("kernel range `{text}`: each bound starts with >=, >, <=, < or = (e.g. \">=6.10,<6.14\")"));
            };
            let v = KernelVersion::parse(rest.trim()).ok_or_else(|| format!("kernel range `{text}`: `{rest}` is not a version"))?;
            bounds.push((cmp, v));
        }
        Ok(VersionRange { text: text.into(), bounds })
    }

    pub fn contains(&self, v: KernelVersion) -> bool {
        self.bounds.iter().all(|(c, b)| match c {
            Cmp::Ge => v >= *b,
            Cmp::Gt => v > *b,
            Cmp::Le => v <= *b,
            Cmp::Lt => v < *b,
            Cmp::Eq => v == *b,
        })
    }
}

impl<'de> Deserialize<'de> for VersionRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        VersionRange::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The condition of an expectation variant. All given parts must hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Kernel release range. For behaviour that changed, never for support
    /// (support comes from probed features).
    #[serde(default)]
    pub kernel: Option<VersionRange>,
    /// Probed features that must be present.
    #[serde(default)]
    pub features: Vec<Feature>,
    /// Probed features that must be absent.
    #[serde(default)]
    pub missing: Vec<Feature>,
    /// A documented library difference.
    #[serde(default)]
    pub loader: Option<LoaderId>,
    /// The version of the loader's library (libbpf `1.5.1`, cilium/ebpf
    /// `0.22.0`): for behaviour that changed in a library release.
    #[serde(default)]
    pub library: Option<VersionRange>,
    /// The kernel's preemption model during the run (one of these), as the
    /// kernel reports it (/sys/kernel/debug/sched/preempt). Never holds where
    /// the model cannot be read.
    #[serde(default)]
    pub preempt: Vec<PreemptMode>,
}

/// A dynamic preemption model (`preempt=` on the kernel command line, or
/// /sys/kernel/debug/sched/preempt on a PREEMPT_DYNAMIC kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum PreemptMode {
    None,
    Voluntary,
    Full,
    Lazy,
}

impl PreemptMode {
    pub const ALL: [PreemptMode; 4] = [PreemptMode::None, PreemptMode::Voluntary, PreemptMode::Full, PreemptMode::Lazy];

    pub fn as_str(self) -> &'static str {
        match self {
            PreemptMode::None => "none",
            PreemptMode::Voluntary => "voluntary",
            PreemptMode::Full => "full",
            PreemptMode::Lazy => "lazy",
        }
    }
}

impl fmt::Display for PreemptMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PreemptMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PreemptMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("preemption model `{s}`: expected none, voluntary, full or lazy"))
    }
}

/// A known kernel (or library) issue: where a case is known to break the
/// documented semantics, why, and where it is written up. A `fail` or
/// `flaky` run that matches becomes `known`: shown and counted, but it does
/// not fail the run. The expectation stays what the kernel promises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownIssue {
    /// Where it applies: kernel range, loader, features, preemption model.
    pub when: When,
    /// One line: what goes wrong and why.
    pub reason: String,
    /// The write-up (a path in this repository, e.g. docs/findings/...).
    pub see: String,
}

/// An expected outcome: a canonical trace, or an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Trace(String),
    Error(ExpectedError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    when: When,
    #[serde(default)]
    trace: Option<String>,
    #[serde(default)]
    error: Option<ExpectedError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    trace: Option<String>,
    #[serde(default)]
    error: Option<ExpectedError>,
    #[serde(default)]
    variants: Vec<RawVariant>,
}

fn one_outcome(trace: Option<String>, error: Option<ExpectedError>, at: &str) -> Result<Outcome, String> {
    match (trace, error) {
        (Some(t), None) => Ok(Outcome::Trace(t)),
        (None, Some(e)) => Ok(Outcome::Error(e)),
        (Some(_), Some(_)) => Err(format!("{at}: expected exactly one of `trace` or `error`, found both")),
        (None, None) => Err(format!("{at}: expected one of `trace` (a canonical trace) or `error` ({{phase, class}})")),
    }
}

/// `expect:` — a default outcome and optional variants (first match wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    pub default: Outcome,
    pub variants: Vec<(When, Outcome)>,
}

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawExpect::deserialize(d)?;
        let default = one_outcome(raw.trace, raw.error, "expect").map_err(serde::de::Error::custom)?;
        let mut variants = Vec::new();
        for (i, v) in raw.variants.into_iter().enumerate() {
            let o = one_outcome(v.trace, v.error, &format!("expect.variants[{i}]")).map_err(serde::de::Error::custom)?;
            variants.push((v.when, o));
        }
        Ok(Expect { default, variants })
    }
}

/// What a variant condition is evaluated against.
pub struct Context<'a> {
    pub kernel: Option<KernelVersion>,
    pub features: &'a crate::probing::features::FeatureSet,
    pub loader: LoaderId,
    /// The preemption model the case ran under, when known.
    pub preempt: Option<PreemptMode>,
    /// The version of the loader's library, when known.
    pub library: Option<KernelVersion>,
}

impl When {
    pub fn holds(&self, cx: &Context<'_>) -> bool {
        self.kernel.as_ref().is_none_or(|r| cx.kernel.is_some_and(|v| r.contains(v)))
            && self.features.iter().all(|f| cx.features.has(*f))
            && self.missing.iter().all(|f| !cx.features.has(*f))
            && self.loader.is_none_or(|l| l == cx.loader)
            && self.library.as_ref().is_none_or(|r| cx.library.is_some_and(|v| r.contains(v)))
            && (self.preempt.is_empty() || cx.preempt.is_some_and(|m| self.preempt.contains(&m)))
    }
}

impl Expect {
    pub fn resolve(&self, cx: &Context<'_>) -> &Outcome {
        self.variants.iter().find(|(w, _)| w.holds(cx)).map(|(_, o)| o).unwrap_or(&self.default)
    }
}

/// Which build of the recorder object a case loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectChoice {
    /// The build whose session-kfunc prototypes match the running kernel (BTF).
    #[default]
    Matching,
    /// Deliberately the other one: records what each loader does with a
    /// session object built for the wrong prototypes.
    Opposite,
}

/// A parsed case file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    pub description: String,
    #[serde(default)]
    pub since: Since,
    #[serde(default)]
    pub requires: Vec<Feature>,
    pub probes: Vec<Probe>,
    /// Steps for the target process P0 (probe-target's step language).
    pub run: String,
    /// Steps for a second process P1, started after P0 has finished.
    #[serde(default)]
    pub run_other: Option<String>,
    pub expect: Expect,
    /// Which build of the recorder object to load (default: matching).
    #[serde(default)]
    pub object: ObjectChoice,
    /// Run under this preemption model: the runner switches the kernel's
    /// dynamic preemption for the case and restores it after. Needs the
    /// `preempt-dynamic` feature (probed).
    #[serde(default)]
    pub preempt: Option<PreemptMode>,
    /// Known issues (see [`KnownIssue`]); first match wins.
    #[serde(default)]
    pub known: Vec<KnownIssue>,
    /// A bpftrace program (cases/bpftrace): the case is run by bpftrace only
    /// (`--loader bpftrace@VERSION`); libbpf and cilium skip it. `${target}`,
    /// `${lib}` and `${pid}` are replaced with the run's probe-target,
    /// libprobetarget.so and P0's pid. Each event is one printed line
    /// `PC|probe|entry|pid|tid|func|arg,arg…` or `PC|probe|return|pid|tid|func|retval[,arg…]`
    /// (`usdt` for a USDT site, with `probe` as func); `probe` names one of
    /// `probes` (which say the kinds the script attaches, for the features).
    #[serde(default)]
    pub bpftrace: Option<String>,
    #[serde(skip)]
    pub path: PathBuf,
}

impl Serialize for Expect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Expect", 2)?;
        st.serialize_field("default", &self.default)?;
        st.serialize_field("variants", &self.variants.len())?;
        st.end()
    }
}

/// A case that could not be read: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct CaseError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Case {
    /// Every feature the case needs: those its probe kinds imply plus `requires`.
    pub fn required_features(&self) -> Vec<Feature> {
        let mut all: Vec<Feature> = self.probes.iter().flat_map(|p| p.kind.implied_features().iter().copied()).collect();
        all.extend(self.requires.iter().copied());
        if self.preempt.is_some() {
            all.push(Feature::PreemptDynamic);
        }
        all.sort();
        all.dedup();
        all
    }

    pub fn parse(text: &str, file: &Path) -> Result<Case, CaseError> {
        let mut case: Case = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
            // serde_yaml_ng appends "at line L column C" itself; keep one location.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            // A duplicate key is reported at the start of its mapping: point
            // at the second occurrence instead, and name the first.
            if let Some((first, second)) = duplicate_key_lines(text, &msg, line, column) {
                return CaseError {
                    file: file.to_path_buf(),
                    line: second,
                    column,
                    message: format!("{msg} (first given at line {first}; each key once)"),
                };
            }
            CaseError { file: file.to_path_buf(), line, column, message: msg }
        })?;
        case.path = file.to_path_buf();
        case.validate(text).map_err(|(at, message)| {
            let (line, column) = match at {
                At::Key(key) => locate(text, &key),
                At::Offset(off) => line_col(text, off),
            };
            CaseError { file: file.to_path_buf(), line, column, message }
        })?;
        // Per-target behaviour: a target's cookie is its index in the table.
        for p in case.probes.iter_mut().filter(|p| p.per_target()) {
            for (i, t) in p.targets.iter_mut().enumerate() {
                t.cookie.get_or_insert(i as u64);
            }
        }
        Ok(case)
    }

    pub fn load(path: &Path) -> Result<Case, CaseError> {
        let text = std::fs::read_to_string(path).map_err(|e| CaseError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        Case::parse(&text, path)
    }

    /// Checks that serde cannot express. Returns where to point: the first
    /// `key:` of the file, or a place found in the text.
    fn validate(&self, text: &str) -> Result<(), (At, String)> {
        self.validate_keys().map_err(|(k, m)| (At::Key(k), m))?;
        for p in &self.probes {
            self.validate_per_target(p, text)?;
        }
        Ok(())
    }

    /// Per-target behaviour ([`TargetRecord`]): kinds, table size, cookies,
    /// and which knobs apply to the probe's program.
    fn validate_per_target(&self, p: &Probe, text: &str) -> Result<(), (At, String)> {
        if !p.per_target() {
            return Ok(());
        }
        let probe_at = probe_offset(text, &p.name);
        // Keys of the probe, and keys inside its targets (searched from `targets:`).
        let at = |key: &str| At::Offset(probe_at.and_then(|o| find_key(text, o, key, None)).or(probe_at).unwrap_or(0));
        let targets_at = probe_at.and_then(|o| find_key(text, o, "targets", None)).or(probe_at);
        let in_targets = |key: &str| At::Offset(targets_at.and_then(|o| find_key(text, o, key, None)).or(targets_at).unwrap_or(0));
        let kinds: Vec<&str> = PER_TARGET_KINDS.iter().map(|k| k.section()).collect();
        if !PER_TARGET_KINDS.contains(&p.kind) {
            return Err((
                in_targets("record"),
                format!(
                    "probe `{}`: per-target `record:` (behaviour selected by the attach cookie) is for one link over many targets: \
                     kinds {}; not {}",
                    p.name,
                    kinds.join(", "),
                    p.kind
                ),
            ));
        }
        if p.record.stack_frame != StackFrame::Small {
            return Err((
                at("stack_frame"),
                format!("probe `{}`: the large-frame recorders have no per-target behaviour: `stack_frame: small` with per-target `record:`", p.name),
            ));
        }
        let n = p.targets.len();
        if n > TARGETS_MAX {
            return Err((
                at("targets"),
                format!(
                    "probe `{}`: {n} targets with per-target behaviour, the recorder's table has {TARGETS_MAX} entries \
                     (their cookies are their indices 0..{}); split the targets over several probes",
                    p.name,
                    TARGETS_MAX - 1
                ),
            ));
        }
        let session = p.kind.is_session() || p.session == Some(true);
        for (i, t) in p.targets.iter().enumerate() {
            if let Some(c) = t.cookie.filter(|&c| c != i as u64) {
                let value = format!("{c:#x}");
                let at = At::Offset(
                    probe_at
                        .and_then(|o| find_cookie(text, o, c))
                        .or_else(|| probe_at.and_then(|o| find_key(text, o, "cookie", Some(&value))))
                        .or(probe_at)
                        .unwrap_or(0),
                );
                if t.record.is_some() {
                    return Err((
                        at,
                        format!(
                            "probe `{}`: target {i} has its own `record:`, so its cookie is its index into the per-target table: \
                             `cookie: {i}` or no `cookie` (found {value})",
                            p.name
                        ),
                    ));
                }
                if c < n as u64 {
                    return Err((
                        at,
                        format!(
                            "probe `{}`: target {i}'s cookie {value} would select target {c}'s behaviour; with per-target \
                             behaviour a target's cookie is its index ({i}), or, for a target without `record:`, a cookie past \
                             the table (>= {n}) that falls back to the probe's knobs",
                            p.name
                        ),
                    ));
                }
            }
            let Some(r) = &t.record else { continue };
            if !session && (r.session_cookie.is_some() || r.skip_return.is_some()) {
                let key = if r.session_cookie.is_some() { "session_cookie" } else { "skip_return" };
                return Err((
                    in_targets(key),
                    format!("probe `{}`: target {i}: `session_cookie`/`skip_return` only apply to session probes; a {} target takes `tag`", p.name, p.kind),
                ));
            }
            if p.kind.is_session() && r.tag.is_some() {
                return Err((
                    in_targets("tag"),
                    format!(
                        "probe `{}`: target {i}: `tag` is for the plain multi kinds; a session target shows its behaviour \
                         through what it writes (`session_cookie`) and whether it skips its return (`skip_return`)",
                        p.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The checks that point at the first `key:` of the file.
    fn validate_keys(&self) -> Result<(), (String, String)> {
        if self.id.is_empty() || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(("id".into(), format!("`id` must be non-empty [A-Za-z0-9_-], found `{}`", self.id)));
        }
        if self.probes.is_empty() {
            return Err(("probes".into(), "expected at least one probe".into()));
        }
        for k in &self.known {
            if k.reason.trim().is_empty() || k.reason.contains('\n') {
                return Err(("reason".into(), "a known issue's `reason` is one non-empty line".into()));
            }
            if k.see.trim().is_empty() {
                return Err(("see".into(), "a known issue names its write-up in `see` (e.g. docs/findings/NAME/README.md)".into()));
            }
            if k.when == When::default() {
                return Err(("when".into(), "a known issue needs a `when` (kernel range, loader, features or preempt): it may not cover every run".into()));
            }
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.probes {
            if !names.insert(&p.name) {
                return Err(("name".into(), format!("probe name `{}` used twice; names identify probes in traces", p.name)));
            }
            if p.targets.is_empty() {
                return Err(("targets".into(), format!("probe `{}`: expected at least one target", p.name)));
            }
            if p.kind == ProbeKind::Usdt && p.targets.iter().any(|t| !t.symbol.as_deref().is_some_and(|s| s.contains(':'))) {
                return Err(("targets".into(), format!("probe `{}`: a usdt target is `symbol: provider:name`", p.name)));
            }
            if p.kind.is_kernel() && p.targets.iter().any(|t| t.symbol.is_none()) {
                return Err(("targets".into(), format!("probe `{}`: kernel probes need a `symbol` per target", p.name)));
            }
            if p.kind.is_tracing() && !p.kind.is_multi_link() && p.targets.len() != 1 {
                return Err((
                    "targets".into(),
                    format!(
                        "probe `{}`: a {} program is bound to one function at load: give exactly one target \
                         (several probes, or {}.multi, for more)",
                        p.name,
                        p.kind,
                        p.kind.section()
                    ),
                ));
            }
            if p.kind.is_tracing() && p.targets.iter().any(|t| t.offset != 0) {
                return Err(("targets".into(), format!("probe `{}`: {} attaches at a function's entry: no `offset`", p.name, p.kind)));
            }
            if p.kind.is_tracing() && (p.retprobe.is_some() || p.session.is_some()) {
                return Err((
                    "probe".into(),
                    format!("probe `{}`: `retprobe`/`session` are link flags of kprobe/uprobe multi links; {} says it in its kind", p.name, p.kind),
                ));
            }
            if p.pid == PidScope::Other && self.run_other.is_none() {
                return Err(("pid".into(), format!("probe `{}` has `pid: other`, which needs `run_other` steps", p.name)));
            }
            if p.record.ret_width.is_some_and(|w| w != 0 && w != 32 && w != 64) {
                return Err(("ret_width".into(), format!("probe `{}`: `ret_width` is 64, 32, or 0 (not shown)", p.name)));
            }
            if p.record.args.is_some_and(|n| n > 2) {
                return Err(("args".into(), format!("probe `{}`: `args` is 0, 1 or 2 (the recorders capture two)", p.name)));
            }
            if !p.kind.is_session() && (p.record.session_cookie != CookieWrite::None || p.record.skip_return != SkipReturn::Never)
                && p.session != Some(true)
            {
                return Err((
                    "record".into(),
                    format!("probe `{}`: `session_cookie`/`skip_return` only apply to session probes", p.name),
                ));
            }
        }
        Ok(())
    }
}

/// For serde's "duplicate field `K`" located at a mapping that starts at
/// `line:column`: the lines of the first and second `K:` among that mapping's
/// own keys (those at `column`, until the mapping ends).
fn duplicate_key_lines(text: &str, message: &str, line: usize, column: usize) -> Option<(usize, usize)> {
    let key = message.split("duplicate field `").nth(1)?.split('`').next()?;
    let pat = format!("{key}:");
    let mut found = Vec::new();
    for (i, l) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let content = l.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        // The first line may begin with `- ` (a sequence item's mapping).
        let indent = if i + 1 == line { column - 1 } else { l.len() - content.len() };
        let own = if i + 1 == line { &l[(column - 1).min(l.len())..] } else { content };
        if indent + 1 < column || (indent + 1 == column && i + 1 != line && l.trim_start().starts_with("- ")) {
            break;
        }
        if indent + 1 == column && own.starts_with(&pat) {
            found.push(i + 1);
            if found.len() == 2 {
                return Some((found[0], found[1]));
            }
        }
    }
    None
}

/// Where a validation error points.
enum At {
    /// The first `key:` of the file (best effort).
    Key(String),
    /// A byte offset in the text.
    Offset(usize),
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, off: usize) -> (usize, usize) {
    let before = &text[..off.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The byte offset of `key:` at or after `from`, as a whole key (so
/// `cookie` does not find `session_cookie`), optionally with this value text
/// after it.
fn find_key(text: &str, from: usize, key: &str, value: Option<&str>) -> Option<usize> {
    let pat = format!("{key}:");
    let mut at = from;
    while let Some(i) = text.get(at..)?.find(&pat) {
        let off = at + i;
        let whole = !text[..off].chars().next_back().is_some_and(is_key_char);
        let rest = text[off + pat.len()..].trim_start_matches([' ', '\t']);
        if whole && value.is_none_or(|v| rest.starts_with(v) && !rest[v.len()..].starts_with(is_key_char)) {
            return Some(off);
        }
        at = off + pat.len();
    }
    None
}

/// The `cookie:` at or after `from` whose value is `c` (decimal or 0x hex).
fn find_cookie(text: &str, from: usize, c: u64) -> Option<usize> {
    let mut at = from;
    while let Some(off) = find_key(text, at, "cookie", None) {
        let rest = text[off + "cookie:".len()..].trim_start_matches([' ', '\t']);
        let word: String = rest.chars().take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_').collect();
        let word = word.replace('_', "");
        let v = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => word.parse().ok(),
        };
        if v == Some(c) {
            return Some(off);
        }
        at = off + 1;
    }
    None
}

/// The byte offset of the probe named `name` (its `name:` key).
fn probe_offset(text: &str, name: &str) -> Option<usize> {
    let mut at = 0;
    while let Some(off) = find_key(text, at, "name", None) {
        let rest = text[off + "name:".len()..].trim_start_matches([' ', '\t']);
        let rest = rest.trim_start_matches(['"', '\'']);
        if rest.starts_with(name) && !rest[name.len()..].starts_with(is_key_char) {
            return Some(off);
        }
        at = off + 1;
    }
    None
}

/// Best-effort position of the first `key:` in the text, for semantic errors.
fn locate(text: &str, key: &str) -> (usize, usize) {
    let pat = format!("{key}:");
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        if trimmed.starts_with(&pat) {
            return (i + 1, line.len() - trimmed.len() + 1);
        }
    }
    (1, 1)
}

/// Loads case files. A file that cannot be read is an error; so are two
/// files with the same `id` (ids name snapshots, rows and results): neither
/// runs, and the error names both files.
pub fn load_set(files: &[PathBuf]) -> (Vec<Case>, Vec<CaseError>) {
    let mut cases: Vec<Case> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match Case::load(f) {
            Ok(c) => cases.push(c),
            Err(e) => errors.push(e),
        }
    }
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut dup = vec![false; cases.len()];
    for (i, c) in cases.iter().enumerate() {
        if let Some(&j) = seen.get(&c.id) {
            dup[i] = true;
            dup[j] = true;
            let text = std::fs::read_to_string(&c.path).unwrap_or_default();
            let (line, column) = locate(&text, "id");
            errors.push(CaseError {
                file: c.path.clone(),
                line,
                column,
                message: format!("id `{}` is also the id of {}; ids must be unique (neither case runs)", c.id, cases[j].path.display()),
            });
        } else {
            seen.insert(c.id.clone(), i);
        }
    }
    let kept = cases.into_iter().zip(dup).filter(|(_, d)| !d).map(|(c, _)| c).collect();
    (kept, errors)
}

/// Every `*.yaml` under the given paths (files or directories), sorted.
pub fn discover(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d)? {
                    let e = e?.path();
                    if e.is_dir() {
                        stack.push(e);
                    } else if e.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                        out.push(e);
                    }
                }
            }
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{}: no such case file or directory", p.display())));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id: demo
description: d
probes:
  - name: s1
    kind: uprobe.session
    targets: [{symbol: pc_leaf, cookie: 0x11}]
    record:
      session_cookie: {const: 0x1001}
      skip_return: odd-arg0
run: call leaf 1
expect:
  trace: |
    P0/T0 s1 entry pc_leaf(1, 0)
  variants:
    - when: {kernel: "<6.14", loader: cilium}
      error: {phase: attach, class: unsupported}
"#;

    #[test]
    fn parses_a_full_case() {
        let c = Case::parse(GOOD, Path::new("demo.yaml")).unwrap();
        assert_eq!(c.probes[0].kind, ProbeKind::UprobeSession);
        assert_eq!(c.probes[0].targets[0].cookie, Some(0x11));
        assert_eq!(c.probes[0].record.session_cookie, CookieWrite::Const(0x1001));
        assert_eq!(c.probes[0].record.skip_return, SkipReturn::OddArg0);
        assert_eq!(c.expect.variants.len(), 1);
        assert_eq!(c.required_features(), vec![Feature::UprobeSession, Feature::SessionKfuncs]);
    }

    fn err(text: &str) -> CaseError {
        Case::parse(text, Path::new("bad.yaml")).unwrap_err()
    }

    #[test]
    fn unknown_kind_lists_valid_kinds_with_location() {
        let e = err(&GOOD.replace("kind: uprobe.session", "kind: uprobe.sesion"));
        assert_eq!((e.line, e.column), (6, 11), "{e}");
        assert!(e.message.contains("uprobe.session") && e.message.contains("kprobe.multi"), "{e}");
        assert!(e.to_string().starts_with("bad.yaml:6:11: "), "{e}");
    }

    #[test]
    fn unknown_feature_lists_valid_tags() {
        let e = err(&GOOD.replace("probes:", "requires: [uprobe-sesion]\nprobes:"));
        assert!(e.message.contains("unknown variant `uprobe-sesion`") && e.message.contains("uprobe-session"), "{e}");
        assert_eq!(e.line, 4);
    }

    #[test]
    fn malformed_yaml_and_missing_fields_are_located() {
        let e = err("id: x\ndescription: [unclosed\n");
        assert_eq!(e.line, 2, "{e}");
        let e = err(&GOOD.replace("run: call leaf 1\n", ""));
        assert!(e.message.contains("missing field `run`"), "{e}");
        let e = err(&GOOD.replace("    targets: [{symbol: pc_leaf, cookie: 0x11}]", "    targets: [{symbol: pc_leaf, cokie: 1}]"));
        assert!(e.message.contains("unknown field `cokie`") && e.message.contains("cookie"), "{e}");
        assert_eq!(e.line, 7);
    }

    #[test]
    fn two_files_with_one_id_are_both_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let text = "id: same\ndescription: d\nprobes: [{name: s, kind: uprobe, targets: [{symbol: pc_leaf}]}]\nrun: r\nexpect: {trace: x}\n";
        let (a, b, c) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"), dir.path().join("c.yaml"));
        std::fs::write(&a, text).unwrap();
        std::fs::write(&b, text).unwrap();
        std::fs::write(&c, text.replace("id: same", "id: other")).unwrap();
        let (cases, errors) = load_set(&[a.clone(), b.clone(), c]);
        assert_eq!(cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["other"]);
        assert_eq!(errors.len(), 1);
        let e = errors[0].to_string();
        assert!(e.contains("b.yaml:1:1") && e.contains(&a.display().to_string()) && e.contains("same"), "{e}");
    }

    #[test]
    fn a_duplicate_key_is_located_at_its_second_occurrence() {
        let top = "id: dup\ndescription: d\nprobes: [{name: s, kind: uprobe, targets: [{symbol: pc_leaf}]}]\nrun: call leaf 1\nexpect: {trace: x}\nrun: call leaf 2\n";
        let e = err(top);
        assert_eq!((e.line, e.column), (6, 1), "{e}");
        assert!(e.message.contains("duplicate field `run`") && e.message.contains("line 4"), "{e}");
        let nested = "id: dup\ndescription: d\nprobes:\n  - name: s\n    kind: uprobe\n    targets: [{symbol: pc_leaf}]\n    kind: uretprobe\nrun: r\nexpect: {trace: x}\n";
        let e = err(nested);
        assert_eq!((e.line, e.column), (7, 5), "{e}");
        assert!(e.message.contains("duplicate field `kind`") && e.message.contains("line 5"), "{e}");
    }

    #[test]
    fn semantic_errors_point_at_the_key() {
        let e = err(&GOOD.replace("    targets: [{symbol: pc_leaf, cookie: 0x11}]\n", "    targets: []\n"));
        assert!(e.message.contains("at least one target"), "{e}");
        assert_eq!(e.line, 7, "{e}");
        let e = err(&GOOD.replace("  trace: |\n    P0/T0 s1 entry pc_leaf(1, 0)\n", ""));
        assert!(e.message.contains("expected one of `trace`"), "{e}");
    }

    #[test]
    fn knob_forms_and_errors() {
        let e = err(&GOOD.replace("skip_return: odd-arg0", "skip_return: odd"));
        assert!(e.message.contains("unknown skip_return `odd`") && e.message.contains("`{arg0-eq: N}`"), "{e}");
        assert_eq!(e.line, 10);
        let e = err(&GOOD.replace("session_cookie: {const: 0x1001}", "session_cookie: {cnst: 1}"));
        assert!(e.message.contains("unknown session_cookie `{cnst: N}`"), "{e}");
        let c = Case::parse(&GOOD.replace("{const: 0x1001}", "attach-cookie"), Path::new("x")).unwrap();
        assert_eq!(c.probes[0].record.session_cookie, CookieWrite::AttachCookie);
    }

    #[test]
    fn stack_frame_knob() {
        let c = Case::parse(GOOD, Path::new("x")).unwrap();
        assert_eq!(c.probes[0].record.stack_frame, StackFrame::Small);
        let c = Case::parse(&GOOD.replace("skip_return: odd-arg0", "skip_return: odd-arg0\n      stack_frame: large"), Path::new("x")).unwrap();
        assert_eq!(c.probes[0].record.stack_frame, StackFrame::Large);
        let e = err(&GOOD.replace("skip_return: odd-arg0", "skip_return: odd-arg0\n      stack_frame: huge"));
        assert!(e.message.contains("unknown variant `huge`") && e.message.contains("small") && e.message.contains("large"), "{e}");
        assert_eq!(e.line, 11, "{e}");
        for k in ProbeKind::ALL {
            assert_eq!(k.large_frame_program(), format!("{}_large", k.program()));
        }
    }

    const PER_TARGET: &str = r#"
id: pt
description: d
probes:
  - name: s
    kind: uprobe.session
    targets:
      - {symbol: pc_leaf, record: {session_cookie: {const: 0x10}, skip_return: always}}
      - {symbol: pc_nop5, record: {session_cookie: arg0}}
      - {symbol: pc_nop1}
    record: {skip_return: odd-arg0}
run: call leaf 1
expect: {trace: x}
"#;

    #[test]
    fn per_target_records_give_index_cookies() {
        let c = Case::parse(PER_TARGET, Path::new("pt.yaml")).unwrap();
        let p = &c.probes[0];
        assert!(p.per_target());
        assert_eq!(p.targets.iter().map(|t| t.cookie).collect::<Vec<_>>(), [Some(0), Some(1), Some(2)]);
        assert_eq!(
            p.targets[0].record,
            Some(TargetRecord { session_cookie: Some(CookieWrite::Const(0x10)), skip_return: Some(SkipReturn::Always), tag: None })
        );
        assert_eq!(p.targets[1].record.as_ref().unwrap().skip_return, None, "absent: the probe's knob");
        assert_eq!(p.targets[2].record, None);
        // Without any target record the cookies stay as given (absent: 0).
        let c = Case::parse(GOOD, Path::new("x")).unwrap();
        assert!(!c.probes[0].per_target());
        let plain = Case::parse(&GOOD.replace("cookie: 0x11", "offset: 0"), Path::new("x")).unwrap();
        assert_eq!((plain.probes[0].targets[0].cookie, plain.probes[0].targets[0].cookie()), (None, 0));
    }

    #[test]
    fn per_target_cookies_are_indices_or_past_the_table() {
        // Its own index: fine, given or not.
        let ok = PER_TARGET.replace("{symbol: pc_nop5, record", "{symbol: pc_nop5, cookie: 1, record");
        assert_eq!(Case::parse(&ok, Path::new("x")).unwrap().probes[0].targets[1].cookie, Some(1));
        // A target with a record and another cookie: refused, at that cookie.
        let e = err(&PER_TARGET.replace("{symbol: pc_nop5, record", "{symbol: pc_nop5, cookie: 0x5, record"));
        assert_eq!((e.line, e.column), (9, 27), "{e}");
        assert!(e.message.contains("target 1 has its own `record:`") && e.message.contains("`cookie: 1`"), "{e}");
        // A target without record: past the table is the deliberate fallback...
        let c = Case::parse(&PER_TARGET.replace("{symbol: pc_nop1}", "{symbol: pc_nop1, cookie: 0x99}"), Path::new("x")).unwrap();
        assert_eq!(c.probes[0].targets[2].cookie, Some(0x99));
        // ...but another target's index is refused.
        let e = err(&PER_TARGET.replace("{symbol: pc_nop1}", "{symbol: pc_nop1, cookie: 0}"));
        assert_eq!((e.line, e.column), (10, 27), "{e}");
        assert!(e.message.contains("would select target 0's behaviour") && e.message.contains(">= 3"), "{e}");
        // The `session_cookie:` of a record is not a `cookie:`.
        let e = err(&PER_TARGET.replace("{symbol: pc_leaf, record", "{symbol: pc_leaf, cookie: 16, record"));
        assert_eq!((e.line, e.column), (8, 27), "{e}");
    }

    #[test]
    fn per_target_table_size_kind_and_knobs() {
        let many: String = (0..9).map(|i| format!("      - {{symbol: pc_leaf, offset: {i}, record: {{skip_return: always}}}}\n")).collect();
        let text = PER_TARGET.replace(
            "      - {symbol: pc_leaf, record: {session_cookie: {const: 0x10}, skip_return: always}}\n      - {symbol: pc_nop5, record: {session_cookie: arg0}}\n      - {symbol: pc_nop1}\n",
            &many,
        );
        let e = err(&text);
        assert!(e.message.contains("9 targets") && e.message.contains("table has 8 entries"), "{e}");
        assert_eq!((e.line, e.column), (7, 5), "{e}");
        // Kinds with one link per target do not take it.
        let e = err(&PER_TARGET.replace("kind: uprobe.session", "kind: uprobe").replace("    record: {skip_return: odd-arg0}\n", ""));
        assert!(e.message.contains("kinds uprobe.multi, uretprobe.multi, uprobe.session") && e.message.contains("not uprobe"), "{e}");
        assert_eq!((e.line, e.column), (8, 27), "{e}");
        // Session knobs on a plain kind; a tag on a session.
        let plain = PER_TARGET.replace("kind: uprobe.session", "kind: uprobe.multi").replace("    record: {skip_return: odd-arg0}\n", "");
        let e = err(&plain);
        assert!(e.message.contains("target 0: `session_cookie`/`skip_return` only apply to session probes"), "{e}");
        assert_eq!((e.line, e.column), (8, 36), "{e}");
        let tagged = "      - {symbol: pc_leaf, record: {tag: 0xa}}\n      - {symbol: pc_nop5, record: {tag: 0xb}}\n";
        let plain = plain.replace(
            "      - {symbol: pc_leaf, record: {session_cookie: {const: 0x10}, skip_return: always}}\n      - {symbol: pc_nop5, record: {session_cookie: arg0}}\n",
            tagged,
        );
        let c = Case::parse(&plain, Path::new("x")).unwrap();
        assert_eq!(c.probes[0].targets[1].record.as_ref().unwrap().tag, Some(0xb));
        let e = err(&PER_TARGET.replace("{session_cookie: arg0}", "{tag: 1}"));
        assert!(e.message.contains("target 1: `tag` is for the plain multi kinds"), "{e}");
        assert_eq!((e.line, e.column), (9, 36), "{e}");
        // No large-frame twin with it.
        let e = err(&PER_TARGET.replace("record: {skip_return: odd-arg0}", "record: {skip_return: odd-arg0, stack_frame: large}"));
        assert!(e.message.contains("large-frame recorders have no per-target behaviour"), "{e}");
    }

    #[test]
    fn per_target_record_is_parsed_strictly() {
        let e = err(&PER_TARGET.replace("{session_cookie: arg0}", "{session_cookie: arg1}"));
        assert!(e.message.contains("unknown session_cookie `arg1`") && e.message.contains("`{const-plus-arg0: N}`"), "{e}");
        assert_eq!(e.line, 9, "{e}");
        let e = err(&PER_TARGET.replace("{session_cookie: arg0}", "{filter_tgid: true}"));
        assert!(e.message.contains("unknown field `filter_tgid`") && e.message.contains("`session_cookie`, `skip_return`, `tag`"), "{e}");
        assert_eq!(e.line, 9, "{e}");
        let e = err(&PER_TARGET.replace("skip_return: always}", "skip_return: {arg0-gt: 3}}"));
        assert!(e.message.contains("unknown skip_return `{arg0-gt: N}`"), "{e}");
    }

    /// The README's per-target example is a valid case fragment.
    #[test]
    fn readme_per_target_example_parses() {
        let readme = include_str!("../README.md");
        let section = readme.split("### Per-target behaviour").nth(1).expect("README has the per-target section");
        let yaml = section.split("```yaml\n").nth(1).and_then(|b| b.split("```").next()).expect("a yaml block");
        let text = format!("id: readme\ndescription: d\n{yaml}run: call leaf 1\nexpect: {{trace: x}}\n");
        let c = Case::parse(&text, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.probes[0].targets.iter().map(|t| t.cookie()).collect::<Vec<_>>(), [0, 1, 2, 0x99]);
    }

    #[test]
    fn version_ranges() {
        let r = VersionRange::parse(">=6.10,<6.14").unwrap();
        assert!(r.contains(KernelVersion::parse("6.12.9-amd64").unwrap()));
        assert!(!r.contains(KernelVersion::parse("6.14.0").unwrap()));
        assert!(!r.contains(KernelVersion::parse("6.1").unwrap()));
        assert!(VersionRange::parse("6.10").is_err());
        assert_eq!(KernelVersion::parse("7.0-rc1"), Some(KernelVersion(7, 0, 0)));
    }
}
