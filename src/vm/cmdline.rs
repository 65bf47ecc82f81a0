//! The `probeconf.*` kernel command line options: what the host asks the guest
//! to do. The host renders them with [`GuestOptions::to_kernel_args`]; the
//! guest parses `/proc/cmdline` with [`GuestOptions::parse`]. The kernel keeps
//! dotted parameters out of init's argv and environment (it takes them for
//! module parameters), so `/proc/cmdline` is where the guest reads them.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `probeconf.mode=run\|features\|hello\|hang\|panic` | `run` | `hello`: only the hello and done lines (a smoke boot, the KVM probe); `features`: also probe features; `run`: also run the cases; `panic`: panic after hello (tests that a panic still ends the VM with a `fatal` line) |
//! | `probeconf.cases=ITEM,…` | every case under `/cases` | ITEM is a path relative to `/cases` (file or directory) or a case `id` |
//! | `probeconf.skip=N` | `0` | skip the first N selected cases (the host resumes a column after a kernel crash) |
//! | `probeconf.results=DEV` | `/dev/ttyS1` | where the JSON Lines go (the second serial port) |
//! | `probeconf.target_timeout=SECS` | `60` | how long one probe-target may run its steps (TCG is slow) |
//! | `probeconf.stress_secs=N` | `30` | `stress-keys` mode: seconds of static-key flipping (src/vm/stress.rs) |
//! | `probeconf.repeat=N` | `1` | attempts per case (results that differ are `flaky`) |
//! | `probeconf.reruns=N` | `2` | further attempts of a case that did not pass (src/run/attempts.rs) |
//! | `probeconf.boot=N` | `0` | which boot of the column this is (the host counts; a crash resumes) |
//! | `probeconf.crash=POINT[@B[-C]]+…` | none | crash the kernel on purpose (sysrq-c) at POINT in boot B (default 0) or boots B to C, to test recovery: `hello` (before probing), `features` (after probing, before its line), `case:N` (as the Nth selected case starts), `after:N` (after the Nth case's results) |
//!
//! Values cannot contain spaces. An unknown `probeconf.*` key is an error (a
//! typo must not silently run everything).


pub const DEFAULT_RESULTS: &str = "/dev/ttyS1";
pub const DEFAULT_TARGET_TIMEOUT_S: u64 = 60;
pub const DEFAULT_STRESS_SECS: u64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestMode {
    Hello,
    Features,
    Run,
    /// Panics after hello: the self-test of the guest's fatal path.
    Panic,
    /// Attach-time scaling of kprobe.multi vs single kprobes (probeconf bench --attach --kernel).
    BenchAttach,
    /// Per-hit cost of the BTF tracing kinds against the kprobe kinds, and
    /// tracing multi attach-time scaling (probeconf bench --tracing --kernel).
    BenchTracing,
    /// Flips a static key while both vCPUs context-switch (probeconf tcg-stress).
    StressKeys,
    /// Says hello, then never another word: the self-test of the host's
    /// stall detection.
    Hang,
}

impl GuestMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestMode::Hello => "hello",
            GuestMode::Features => "features",
            GuestMode::Run => "run",
            GuestMode::Panic => "panic",
            GuestMode::BenchAttach => "bench-attach",
            GuestMode::BenchTracing => "bench-tracing",
            GuestMode::StressKeys => "stress-keys",
            GuestMode::Hang => "hang",
        }
    }
}

/// Where a deliberate crash happens (`probeconf.crash=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    Hello,
    Features,
    /// As the Nth selected case (0-based, counting skipped ones) starts.
    Case(usize),
    /// After the Nth selected case's results are sent.
    After(usize),
}

/// Deliberate crashes: each at a point, in some boots of the column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashPlan {
    /// (where, first boot, last boot), boots counted from 0.
    pub entries: Vec<(CrashPoint, usize, usize)>,
}

impl CrashPlan {
    /// `POINT[@BOOTS]` entries joined by `+`; POINT is `hello`, `features`,
    /// `case:N` or `after:N`; BOOTS is `B` (that boot) or `B-C` (those
    /// boots), default 0.
    pub fn parse(v: &str) -> Result<CrashPlan, String> {
        let bad = |e: &str| {
            format!("probeconf.crash=`{v}`: `{e}`: expected POINT[@B or @B-C] joined by +, POINT = hello, features, case:N or after:N")
        };
        let mut entries = Vec::new();
        for e in v.split('+') {
            let (point, boots) = e.split_once('@').unwrap_or((e, "0"));
            let (first, last) = match boots.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad(e))?, b.parse().map_err(|_| bad(e))?),
                None => {
                    let b = boots.parse().map_err(|_| bad(e))?;
                    (b, b)
                }
            };
            let at = match point.split_once(':') {
                None if point == "hello" => CrashPoint::Hello,
                None if point == "features" => CrashPoint::Features,
                Some(("case", n)) => CrashPoint::Case(n.parse().map_err(|_| bad(e))?),
                Some(("after", n)) => CrashPoint::After(n.parse().map_err(|_| bad(e))?),
                _ => return Err(bad(e)),
            };
            if last < first {
                return Err(bad(e));
            }
            entries.push((at, first, last));
        }
        Ok(CrashPlan { entries })
    }

    pub fn render(&self) -> String {
        let one = |(at, a, b): &(CrashPoint, usize, usize)| {
            let p = match at {
                CrashPoint::Hello => "hello".to_string(),
                CrashPoint::Features => "features".to_string(),
                CrashPoint::Case(n) => format!("case:{n}"),
                CrashPoint::After(n) => format!("after:{n}"),
            };
            if a == b {
                format!("{p}@{a}")
            } else {
                format!("{p}@{a}-{b}")
            }
        };
        self.entries.iter().map(one).collect::<Vec<_>>().join("+")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestOptions {
    pub mode: GuestMode,
    /// Empty = every case under /cases.
    pub cases: Vec<String>,
    /// Selected cases to skip from the start (resuming after a crash).
    pub skip: usize,
    pub results: String,
    pub target_timeout_s: u64,
    /// `stress-keys` mode: seconds of static-key flipping.
    pub stress_secs: u64,
    /// Attempts per case.
    pub attempts: crate::run::attempts::AttemptPolicy,
    /// This boot's number within its column.
    pub boot: usize,
    /// A deliberate crash, for testing recovery.
    pub crash: Option<CrashPlan>,
}

impl GuestOptions {
    /// Whether the deliberate crash (if any) is at `point` in this boot.
    pub fn crashes_at(&self, point: CrashPoint) -> bool {
        self.crash.as_ref().is_some_and(|c| c.entries.iter().any(|(at, a, b)| *at == point && (*a..=*b).contains(&self.boot)))
    }
}

impl Default for GuestOptions {
    fn default() -> Self {
        GuestOptions {
            mode: GuestMode::Run,
            cases: Vec::new(),
            skip: 0,
            results: DEFAULT_RESULTS.into(),
            target_timeout_s: DEFAULT_TARGET_TIMEOUT_S,
            stress_secs: DEFAULT_STRESS_SECS,
            attempts: Default::default(),
            boot: 0,
            crash: None,
        }
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

impl GuestOptions {
    /// Reads the `probeconf.*` words of a kernel command line; other words are
    /// the kernel's.
    pub fn parse(cmdline: &str) -> Result<GuestOptions, String> {
        let mut o = GuestOptions::default();
        for word in cmdline.split_whitespace() {
            let Some(rest) = word.strip_prefix("probeconf.") else { continue };
            let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
            match key {
                "mode" => {
                    o.mode = match value {
                        "hello" => GuestMode::Hello,
                        "features" => GuestMode::Features,
                        "run" => GuestMode::Run,
                        "panic" => GuestMode::Panic,
                        "bench-attach" => GuestMode::BenchAttach,
                        "bench-tracing" => GuestMode::BenchTracing,
                        "stress-keys" => GuestMode::StressKeys,
                        "hang" => GuestMode::Hang,
                        _ => {
                            return Err(format!(
                                "probeconf.mode=`{value}`: expected hello, features, run, bench-attach, bench-tracing, stress-keys, hang or panic"
                            ))
                        }
                    }
                }
                "cases" => o.cases = list(value),
                "skip" => o.skip = value.parse().map_err(|_| format!("probeconf.skip=`{value}`: expected a number"))?,
                "results" => o.results = value.to_string(),
                "target_timeout" => {
                    o.target_timeout_s = value.parse().map_err(|_| format!("probeconf.target_timeout=`{value}`: expected seconds"))?
                }
                "stress_secs" => o.stress_secs = value.parse().map_err(|_| format!("probeconf.stress_secs=`{value}`: expected seconds"))?,
                "repeat" => {
                    o.attempts.repeat = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| format!("probeconf.repeat=`{value}`: expected a number >= 1"))?
                }
                "reruns" => o.attempts.reruns = value.parse().map_err(|_| format!("probeconf.reruns=`{value}`: expected a number"))?,
                "boot" => o.boot = value.parse().map_err(|_| format!("probeconf.boot=`{value}`: expected a number"))?,
                "crash" => o.crash = Some(CrashPlan::parse(value)?),
                _ => {
                    return Err(format!(
                        "unknown kernel parameter `probeconf.{key}` (known: mode, cases, skip, results, target_timeout, stress_secs, repeat, reruns, boot, crash)"
                    ))
                }
            }
        }
        Ok(o)
    }

    /// The words to append to the kernel command line; defaults are left out.
    pub fn to_kernel_args(&self) -> String {
        let d = GuestOptions::default();
        let mut w = Vec::new();
        if self.mode != d.mode {
            w.push(format!("probeconf.mode={}", self.mode.as_str()));
        }
        if self.skip != d.skip {
            w.push(format!("probeconf.skip={}", self.skip));
        }
        if !self.cases.is_empty() {
            w.push(format!("probeconf.cases={}", self.cases.join(",")));
        }
        if self.results != d.results {
            w.push(format!("probeconf.results={}", self.results));
        }
        if self.target_timeout_s != d.target_timeout_s {
            w.push(format!("probeconf.target_timeout={}", self.target_timeout_s));
        }
        if self.stress_secs != d.stress_secs {
            w.push(format!("probeconf.stress_secs={}", self.stress_secs));
        }
        if self.attempts.repeat != d.attempts.repeat {
            w.push(format!("probeconf.repeat={}", self.attempts.repeat));
        }
        if self.attempts.reruns != d.attempts.reruns {
            w.push(format!("probeconf.reruns={}", self.attempts.reruns));
        }
        if self.boot != d.boot {
            w.push(format!("probeconf.boot={}", self.boot));
        }
        if let Some(c) = &self.crash {
            w.push(format!("probeconf.crash={}", c.render()));
        }
        w.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_own_rendering_among_kernel_words() {
        let o = GuestOptions {
            mode: GuestMode::Features,
            cases: vec!["uprobe".into(), "uprobe-session-skip-odd".into()],
            results: "/dev/ttyS2".into(),
            target_timeout_s: 5,
            skip: 3,
            stress_secs: 10,
            attempts: crate::run::attempts::AttemptPolicy { repeat: 3, reruns: 0 },
            boot: 2,
            crash: Some(CrashPlan { entries: vec![(CrashPoint::Case(4), 0, 1), (CrashPoint::Hello, 3, 3)] }),
        };
        let line = format!("console=ttyS0 panic=-1 {} quiet\n", o.to_kernel_args());
        assert_eq!(GuestOptions::parse(&line).unwrap(), o);
        assert_eq!(GuestOptions::parse("console=ttyS0").unwrap(), GuestOptions::default());
        assert_eq!(GuestOptions::default().to_kernel_args(), "");
        let bench = GuestOptions { mode: GuestMode::BenchAttach, ..GuestOptions::default() };
        assert_eq!(bench.to_kernel_args(), "probeconf.mode=bench-attach");
        assert_eq!(GuestOptions::parse("probeconf.mode=bench-attach").unwrap(), bench);
    }

    #[test]
    fn typos_are_errors() {
        assert!(GuestOptions::parse("probeconf.case=a").unwrap_err().contains("probeconf.case"));
        assert!(GuestOptions::parse("probeconf.loaders=bcc").unwrap_err().contains("probeconf.loaders"));
        assert!(GuestOptions::parse("probeconf.mode=all").is_err());
        assert!(GuestOptions::parse("probeconf.crash=case:x").is_err());
        assert!(GuestOptions::parse("probeconf.crash=hello@2-1").is_err());
        let plan = CrashPlan::parse("features+case:1@1+hello@2-4").unwrap();
        assert_eq!(plan.entries, [(CrashPoint::Features, 0, 0), (CrashPoint::Case(1), 1, 1), (CrashPoint::Hello, 2, 4)]);
        let o = GuestOptions { crash: Some(plan), boot: 3, ..GuestOptions::default() };
        assert!(o.crashes_at(CrashPoint::Hello) && !o.crashes_at(CrashPoint::Features) && !o.crashes_at(CrashPoint::Case(1)));
        assert!(GuestOptions::parse("probeconf.repeat=0").is_err());
    }
}
