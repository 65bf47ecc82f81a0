//! The compatibility registry: every gap between what a library exposes and
//! what the suite needs, and how it is bridged. The Rust half is here (libbpf /
//! libbpf-rs); the Go half comes from `probeconf-harness gaps`. `probeconf gaps`
//! prints both, and the README's table is generated from the same data (a test
//! fails when they drift).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapStatus {
    /// The library does it; the entry documents a difference a comparison must normalise.
    Native,
    /// Bridged by the compatibility layer.
    Compat,
    /// Not available; the suite reports it rather than bridging it.
    Missing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub id: String,
    pub library: String,
    pub versions: String,
    pub feature: String,
    pub status: GapStatus,
    pub workaround: String,
}

fn gap(id: &str, library: &str, versions: &str, feature: &str, status: GapStatus, workaround: &str) -> Gap {
    Gap {
        id: id.into(),
        library: library.into(),
        versions: versions.into(),
        feature: feature.into(),
        status,
        workaround: workaround.into(),
    }
}

/// The libbpf side (src/loaders/libbpf*.rs, src/probing/mod.rs).
pub fn rust_registry() -> Vec<Gap> {
    use GapStatus::*;
    vec![
        gap(
            crate::loaders::libbpf_compat::KPROBE_SESSION_BRIDGE,
            "libbpf-rs",
            "0.27.2 (libbpf 1.7)",
            "kprobe.session attach (BPF_TRACE_KPROBE_SESSION = 56, kernel >= 6.10)",
            Compat,
            "KprobeMultiOpts has no `session` flag. The loader calls libbpf's bpf_program__attach_kprobe_multi_opts \
             through the re-exported libbpf_sys with .session = true, symbols and cookies (src/loaders/libbpf_compat.rs).",
        ),
        gap(
            "libbpf-rs-kretprobe-cookie",
            "libbpf-rs",
            "0.27.2",
            "kretprobe with a cookie or an offset",
            Compat,
            "KprobeOpts carries a cookie but no retprobe flag, and attach_kprobe(retprobe) no cookie. The loader calls \
             bpf_program__attach_kprobe_opts with retprobe, offset and bpf_cookie together.",
        ),
        gap(
            "libbpf-pid-semantics",
            "libbpf",
            "all",
            "pid filter of uprobe / uprobe_multi attachments",
            Native,
            "libbpf: 0 = the calling process, -1 = all processes (cilium: 0 = all). Cases say target/other/all; \
             the loader maps `all` to -1 and never passes 0 (libbpf_pid).",
        ),
        gap(
            "libbpf-session-retprobe",
            "libbpf",
            ">= 1.5",
            "session link together with the retprobe flag",
            Native,
            "libbpf refuses retprobe + session with EINVAL before the kernel sees it; the kernel has no such check. \
             Reported as a documented library difference (case uprobe-session-retprobe-flag).",
        ),
        gap(
            "libbpf-rs-uprobe-session-attach-type",
            "libbpf-rs",
            "0.27.2",
            "ProgramAttachType for uprobe.session programs",
            Missing,
            "There is no ProgramAttachType::TraceUprobeSession; attach_type() of such a program is Unknown. The suite \
             does not need it (UprobeMultiOpts.session attaches natively).",
        ),
        gap(
            "session-kfunc-prototype",
            "libbpf + cilium/ebpf",
            "kernels 6.10-6.19 vs >= 7.0",
            "session kfuncs bpf_session_is_return/bpf_session_cookie gained `void *ctx` in 7.0",
            Compat,
            "Every object with session programs is built twice from one source (bpf/session_kfuncs.h). The runner \
             reads the running kernel's BTF (bpf_session_cookie's FUNC_PROTO) and hands both loaders the matching \
             object: sessions.bpf.o or sessions.ctx.bpf.o (src/probing/mod.rs kfunc_variant); the other recorders have no kfuncs and are built once.",
        ),
    ]
}

/// The Go half, from the harness.
pub fn go_registry(harness: &std::path::Path) -> Result<Vec<Gap>, String> {
    let out = duct::cmd(harness, ["gaps"])
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| format!("{} gaps: {e}", harness.display()))?;
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{} gaps: {e}", harness.display()))
}

fn status_str(s: GapStatus) -> &'static str {
    match s {
        GapStatus::Native => "native",
        GapStatus::Compat => "compat",
        GapStatus::Missing => "missing",
    }
}

/// A markdown table (README and `probeconf gaps --format markdown`).
pub fn markdown(gaps: &[Gap]) -> String {
    let mut s = String::from("| library | versions | feature | status | workaround |\n|---|---|---|---|---|\n");
    for g in gaps {
        let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
        s.push_str(&format!(
            "| {} | {} | {} | **{}** | {} |\n",
            cell(&g.library),
            cell(&g.versions),
            cell(&g.feature),
            status_str(g.status),
            cell(&g.workaround)
        ));
    }
    s
}

/// A terminal table with wrapped workaround text.
pub fn table(gaps: &[Gap]) -> String {
    let mut s = format!("{:<22} {:<28} {:<8} {}\n", "library", "versions", "status", "feature / workaround");
    for g in gaps {
        s.push_str(&format!(
            "{:<22} {:<28} {:<8} {}\n",
            g.library,
            g.versions.chars().take(28).collect::<String>(),
            status_str(g.status),
            g.feature
        ));
        let mut line = String::new();
        for w in g.workaround.split_whitespace() {
            if line.len() + w.len() > 70 {
                s.push_str(&format!("{:<60}   {}\n", "", line.trim_end()));
                line.clear();
            }
            line.push_str(w);
            line.push(' ');
        }
        if !line.is_empty() {
            s.push_str(&format!("{:<60}   {}\n", "", line.trim_end()));
        }
    }
    s
}

pub const README_BEGIN: &str = "<!-- gaps:begin (generated by `probeconf gaps --update-readme`) -->";
pub const README_END: &str = "<!-- gaps:end -->";

/// The README with its gaps block replaced by `table`.
pub fn readme_with(readme: &str, table: &str) -> Result<String, String> {
    let b = readme.find(README_BEGIN).ok_or("README has no gaps:begin marker")?;
    let e = readme.find(README_END).ok_or("README has no gaps:end marker")?;
    Ok(format!("{}{}\n{}{}", &readme[..b], README_BEGIN, table, &readme[e..]))
}
