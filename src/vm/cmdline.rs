//! The `probeconf.*` kernel command line options: what the host asks the guest
//! to do. The host renders them with [`GuestOptions::to_kernel_args`]; the
//! guest parses `/proc/cmdline` with [`GuestOptions::parse`]. The kernel keeps
//! dotted parameters out of init's argv and environment (it takes them for
//! module parameters), so `/proc/cmdline` is where the guest reads them.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `probeconf.mode=run\|features\|hello\|panic` | `run` | `hello`: only the hello and done lines (a smoke boot, the KVM probe); `features`: also probe features; `run`: also run the cases; `panic`: panic after hello (tests that a panic still ends the VM with a `fatal` line) |
//! | `probeconf.cases=ITEM,…` | every case under `/cases` | ITEM is a path relative to `/cases` (file or directory) or a case `id` |
//! | `probeconf.skip=N` | `0` | skip the first N selected cases (the host resumes a column after a kernel crash) |
//! | `probeconf.loaders=libbpf,cilium` | both | which loaders run, in this order |
//! | `probeconf.results=DEV` | `/dev/ttyS1` | where the JSON Lines go (the second serial port) |
//! | `probeconf.target_timeout=SECS` | `60` | how long one probe-target may run its steps (TCG is slow) |
//! | `probeconf.stress_secs=N` | `30` | `stress-keys` mode: seconds of static-key flipping (src/vm/stress.rs) |
//!
//! Values cannot contain spaces. An unknown `probeconf.*` key is an error (a
//! typo must not silently run everything).

use crate::case::LoaderId;

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
    /// Flips a static key while both vCPUs context-switch (probeconf tcg-stress).
    StressKeys,
}

impl GuestMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestMode::Hello => "hello",
            GuestMode::Features => "features",
            GuestMode::Run => "run",
            GuestMode::Panic => "panic",
            GuestMode::BenchAttach => "bench-attach",
            GuestMode::StressKeys => "stress-keys",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestOptions {
    pub mode: GuestMode,
    /// Empty = every case under /cases.
    pub cases: Vec<String>,
    /// Selected cases to skip from the start (resuming after a crash).
    pub skip: usize,
    pub loaders: Vec<LoaderId>,
    pub results: String,
    pub target_timeout_s: u64,
    /// `stress-keys` mode: seconds of static-key flipping.
    pub stress_secs: u64,
}

impl Default for GuestOptions {
    fn default() -> Self {
        GuestOptions {
            mode: GuestMode::Run,
            cases: Vec::new(),
            skip: 0,
            loaders: vec![LoaderId::Libbpf, LoaderId::Cilium],
            results: DEFAULT_RESULTS.into(),
            target_timeout_s: DEFAULT_TARGET_TIMEOUT_S,
            stress_secs: DEFAULT_STRESS_SECS,
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
                        "stress-keys" => GuestMode::StressKeys,
                        _ => {
                            return Err(format!(
                                "probeconf.mode=`{value}`: expected hello, features, run, bench-attach, stress-keys or panic"
                            ))
                        }
                    }
                }
                "cases" => o.cases = list(value),
                "skip" => o.skip = value.parse().map_err(|_| format!("probeconf.skip=`{value}`: expected a number"))?,
                "loaders" => {
                    o.loaders = list(value)
                        .iter()
                        .map(|l| match l.as_str() {
                            "libbpf" => Ok(LoaderId::Libbpf),
                            "cilium" => Ok(LoaderId::Cilium),
                            _ => Err(format!("probeconf.loaders: unknown loader `{l}` (libbpf, cilium)")),
                        })
                        .collect::<Result<_, _>>()?;
                    if o.loaders.is_empty() {
                        return Err("probeconf.loaders is empty".into());
                    }
                }
                "results" => o.results = value.to_string(),
                "target_timeout" => {
                    o.target_timeout_s = value.parse().map_err(|_| format!("probeconf.target_timeout=`{value}`: expected seconds"))?
                }
                "stress_secs" => o.stress_secs = value.parse().map_err(|_| format!("probeconf.stress_secs=`{value}`: expected seconds"))?,
                _ => {
                    return Err(format!(
                        "unknown kernel parameter `probeconf.{key}` (known: mode, cases, skip, loaders, results, target_timeout, stress_secs)"
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
        if self.loaders != d.loaders {
            let l: Vec<&str> = self.loaders.iter().map(|l| l.as_str()).collect();
            w.push(format!("probeconf.loaders={}", l.join(",")));
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
            loaders: vec![LoaderId::Cilium],
            results: "/dev/ttyS2".into(),
            target_timeout_s: 5,
            skip: 3,
            stress_secs: 10,
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
        assert!(GuestOptions::parse("probeconf.loaders=bcc").unwrap_err().contains("bcc"));
        assert!(GuestOptions::parse("probeconf.mode=all").is_err());
    }
}
