//! The user's cache directory for everything probeconf builds or fetches:
//! `$PROBECONF_CACHE`, else `$XDG_CACHE_HOME/probeconf`, else
//! `~/.cache/probeconf`. Below it: `harness/` (Go harness builds),
//! `libbpf-harness/` (libbpf builds), `kernels/`, `apt/`, `roots/`, `vmlinux/`.

use std::path::PathBuf;

pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PROBECONF_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("probeconf")
}
