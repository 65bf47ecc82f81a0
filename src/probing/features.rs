//! The controlled feature vocabulary (like test262's `features`): the only tags a
//! case may name in `requires` or `when`. Each tag is a kernel capability that
//! src/probing/mod.rs finds out by trying, never from a version number.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

macro_rules! features {
    ($($variant:ident = $tag:literal : $doc:literal,)*) => {
        /// A kernel capability a case can require.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Feature {
            $(#[doc = $doc] #[serde(rename = $tag)] $variant,)*
        }

        impl Feature {
            pub const ALL: &'static [Feature] = &[$(Feature::$variant,)*];

            pub fn tag(self) -> &'static str {
                match self { $(Feature::$variant => $tag,)* }
            }

            pub fn doc(self) -> &'static str {
                match self { $(Feature::$variant => $doc,)* }
            }
        }
    };
}

features! {
    Uprobe = "uprobe": "perf-event uprobe at function entry fires",
    Uretprobe = "uretprobe": "perf-event uretprobe fires at return",
    AttachCookie = "attach-cookie": "bpf_get_attach_cookie() returns the cookie given at attach",
    UprobeFuncIp = "uprobe-func-ip": "bpf_get_func_ip() in a uprobe returns the probed address",
    UprobeMulti = "uprobe-multi": "BPF_TRACE_UPROBE_MULTI links (attach type 48)",
    UprobeSession = "uprobe-session": "BPF_TRACE_UPROBE_SESSION links (attach type 57)",
    SessionKfuncs = "session-kfuncs": "bpf_session_is_return()/bpf_session_cookie() work in a session program (either prototype)",
    SessionKfuncNoArg = "session-kfunc-noarg": "the session kfuncs take no argument (6.10-6.19), from kernel BTF",
    SessionKfuncCtx = "session-kfunc-ctx": "the session kfuncs take void *ctx (7.0+), from kernel BTF",
    Kprobe = "kprobe": "perf-event kprobe fires (needs CONFIG_KPROBES)",
    KprobeMulti = "kprobe-multi": "BPF_TRACE_KPROBE_MULTI links (needs CONFIG_FPROBE)",
    KprobeSession = "kprobe-session": "BPF_TRACE_KPROBE_SESSION links (attach type 56)",
    Fentry = "fentry": "an fentry program (BPF trampoline, BTF id of a kernel function) attaches and fires (5.5; needs ftrace direct calls)",
    Fexit = "fexit": "an fexit program attaches and fires at the function's return, bpf_get_func_ret() giving its return value",
    Fsession = "fsession": "an fsession program (BPF_TRACE_FSESSION, attach type 58) runs at entry and return, is_return and the session cookie round trip working (7.0)",
    TracingMulti = "tracing-multi": "a tracing multi link (BPF_TRACE_FENTRY_MULTI, attach type 59: one fentry program, many BTF ids, per-target cookies) attaches and fires",
    UretprobeSyscall = "uretprobe-syscall": "the uretprobe syscall (x86_64 nr 335) exists",
    UprobeSyscall = "uprobe-syscall": "the uprobe syscall (x86_64 nr 336) exists (anything but ENOSYS outside the trampoline)",
    UprobeSyscallEnxio = "uprobe-syscall-enxio": "the uprobe syscall answers ENXIO outside the trampoline: the signal libbpf 1.7 takes to move nop;nop5 USDT probes onto the nop5 (6.18; 7.x answers otherwise)",
    UprobeNop5Optimize = "uprobe-nop5-optimize": "a uprobe on a 5-byte nop becomes a call into [uprobes-trampoline] after its first hit",
    UprobeNop10Attach = "uprobe-nop10-attach": "the kernel accepts a uprobe on the CS-prefixed 10-byte nop 66 2e 0f 1f 84 00.. (older decoders refuse segment prefixes: ENOTSUPP)",
    UprobeNop10Optimize = "uprobe-nop10-optimize": "a uprobe on the CS-prefixed 10-byte nop is rewritten (no longer that nop or an int3) after its first hit",
    UretprobeSeccompPassthrough = "uretprobe-seccomp-passthrough": "a process under a strict seccomp allow-list survives a uretprobe hit (the uretprobe syscall, if used, bypasses seccomp)",
    UprobeSeccompPassthrough = "uprobe-seccomp-passthrough": "a process under a strict seccomp allow-list survives hits of an optimised nop5 uprobe (the uprobe syscall, if used, bypasses seccomp)",
    UprobePrivateStack = "uprobe-private-stack": "the JIT runs a uprobe program whose frame is >= 64 bytes on a per-CPU private stack (read back from its x86-64 JIT image): preempted runs on one CPU then share it (6.13+; see docs/findings/uprobe-private-stack/)",
    PreemptDynamic = "preempt-dynamic": "the preemption model can be switched at run time (/sys/kernel/debug/sched/preempt reads and takes a write): cases with `preempt:` need it",
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

impl std::str::FromStr for Feature {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Feature::ALL.iter().copied().find(|f| f.tag() == s).ok_or_else(|| {
            format!("unknown feature `{s}`, expected one of: {}", Feature::ALL.iter().map(|f| f.tag()).collect::<Vec<_>>().join(", "))
        })
    }
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub supported: bool,
    /// How the probe decided: what it tried and what the kernel answered.
    pub detail: String,
}

/// The probed capabilities of one running kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSet {
    pub kernel: String,
    pub results: BTreeMap<Feature, ProbeResult>,
}

impl FeatureSet {
    pub fn has(&self, f: Feature) -> bool {
        self.results.get(&f).is_some_and(|r| r.supported)
    }

    pub fn missing<'a>(&self, wanted: impl IntoIterator<Item = &'a Feature>) -> Vec<Feature> {
        wanted.into_iter().copied().filter(|f| !self.has(*f)).collect()
    }

    pub fn why(&self, f: Feature) -> &str {
        self.results.get(&f).map(|r| r.detail.as_str()).unwrap_or("not probed")
    }

    /// The flat `tag → bool` object of `probeconf features --format json`.
    pub fn flat_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("kernel".into(), self.kernel.clone().into());
        for (f, r) in &self.results {
            m.insert(f.tag().into(), r.supported.into());
        }
        serde_json::Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_roundtrip_and_unknown_lists_valid() {
        for f in Feature::ALL {
            assert_eq!(f.tag().parse::<Feature>().unwrap(), *f);
        }
        let err = "uprobe-sesion".parse::<Feature>().unwrap_err();
        assert!(err.contains("uprobe-session") && err.contains("kprobe-multi"), "{err}");
    }
}
