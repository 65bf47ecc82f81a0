//! The libbpf bridges as a library: what libbpf-rs (or the linked libbpf)
//! does not expose, as extension traits on libbpf-rs's own types. probeconf's
//! loader ([`crate::loader`]) attaches through these same functions, and its
//! registry ([`crate::compat`]) says which of them each libbpf version needs.
//!
//! | bridge | API | what libbpf-rs / libbpf lacks | minimum kernel | library |
//! |---|---|---|---|---|
//! | kprobe sessions | [`ProgramBridgeExt::attach_kprobe_session`], [`ProgramBridgeExt::attach_kprobe_multi_with_session_opts`] ([`KprobeMultiSessionOpts`]) | no `session` in libbpf-rs's `KprobeMultiOpts` (0.25–0.27); the bridge calls libbpf's `bpf_program__attach_kprobe_multi_opts` with `.session` | 6.10 (`CONFIG_FPROBE`) | libbpf 1.5+ |
//! | kretprobe with cookie, kprobe at an offset | [`ProgramBridgeExt::attach_kprobe_full_opts`] ([`KprobeFullOpts`]), [`ProgramBridgeExt::attach_kretprobe_with_cookie`] | `KprobeOpts` has a cookie but no retprobe flag, `attach_kprobe` the flag but no cookie, neither an offset; the bridge calls `bpf_program__attach_kprobe_opts` | kprobes; cookies 5.15 | any |
//! | uprobe_multi on libbpf-rs 0.25 | [`ProgramBridgeExt::attach_uprobe_multi_bridged`] ([`UprobeMultiBridgeOpts`]) | libbpf-rs 0.25 has no `UprobeMultiOpts`; the bridge calls `bpf_program__attach_uprobe_multi` (0.26+: libbpf-rs's own call) | 6.6 | libbpf 1.5+ |
//! | uprobe sessions on libbpf 1.5 | [`ProgramBridgeExt::attach_uprobe_session`], [`ProgramBridgeExt::attach_uprobe_multi_bridged`] with `session`, [`attach_uprobe_session_raw`], [`OpenProgramBridgeExt::type_uprobe_session_section`] | libbpf 1.5 knows neither `SEC("uprobe.session")` nor `bpf_uprobe_multi_opts.session`; the bridge types the program as 1.6 does and creates the link with `BPF_LINK_CREATE` itself (1.6+: libbpf-rs's `UprobeMultiOpts { session }`) | 6.13 | libbpf 1.5+ |
//! | fentry / fexit / fsession with a cookie | [`ProgramBridgeExt::attach_trace_with_cookie`] | libbpf-rs's `attach_trace()` takes no options; the bridge calls `bpf_program__attach_trace_opts` with `.cookie` | 5.5 (cookies 6.0; fsession 7.0) | any |
//! | fsession on libbpf < 1.7 | [`OpenProgramBridgeExt::type_tracing_section`], [`OpenProgramBridgeExt::set_tracing_target`] | libbpf 1.5/1.6 do not know `SEC("fsession")`; the bridge types it as 1.7 does (TRACING, attach type 58) | 7.0 | libbpf 1.5+ |
//! | tracing multi link | [`OpenProgramBridgeExt::type_tracing_section`], [`ProgramBridgeExt::attach_tracing_multi`], [`attach_tracing_multi_raw`], [`kernel_func_ids`] | no libbpf release knows `SEC("fentry.multi")`, `fexit.multi`, `fsession.multi` or the link; the bridge types the program (attach type 59/60/61, no target at load), resolves BTF ids from vmlinux BTF and issues `BPF_LINK_CREATE` itself | probe it (7.3 has it) | any |
//! | session-kfunc prototype | [`session_kfunc_prototype`], [`object_variant`] | the session kfuncs changed prototype in 7.0; pick the object build for the running kernel from its BTF | 6.10 / 6.13; kernel BTF | any |
//!
//! Every call returns a [`BridgeError`] on failure: the errno, probeconf's
//! class of it, the failed call's words and a hint at the likely cause
//! ("kernel lacks uprobe sessions (Linux 6.13+)").
//!
//! The libbpf version is the one this crate links (libbpf-rs `=0.27.2` on
//! libbpf 1.7 by default; probeconf's version builds compile the same code
//! against libbpf-rs 0.25/0.26 with the `api-0-25`/`api-0-26` features). A
//! program on libbpf 1.6+ never takes the raw session path; it is compiled in
//! and can be called directly ([`attach_uprobe_session_raw`]).
//!
//! ```no_run
//! use libbpf_harness::bridge::{ProgramBridgeExt, UprobeMultiBridgeOpts};
//! use libbpf_rs::ObjectBuilder;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut open = ObjectBuilder::default().open_file("sessions.bpf.o")?;
//! # use libbpf_harness::bridge::OpenProgramBridgeExt;
//! for mut p in open.progs_mut() {
//!     p.type_uprobe_session_section(); // a no-op on libbpf 1.6+
//! }
//! let obj = open.load()?;
//! let prog = obj.progs_mut().find(|p| p.name() == "pc_uprobe_session").unwrap();
//! // -1: every process (libbpf's pid convention; 0 is the caller)
//! let link = prog.attach_uprobe_session(-1, "/usr/bin/probe-target", &["pc_leaf"], &[])?;
//! # drop(link);
//! # Ok(()) }
//! ```

mod error;
pub mod elf;
mod kfunc;
mod kprobe;
mod tracing;
mod uprobe;

pub use error::{BridgeError, Op};
pub use kfunc::{object_variant, session_kfunc_prototype, Variant};
pub use kprobe::{KprobeFullOpts, KprobeMultiSessionOpts};
pub use tracing::{
    attach_tracing_multi_raw, kernel_func_ids, kernel_knows, LinkCreateTracingMulti, TracingKind, BPF_TRACE_FENTRY, BPF_TRACE_FENTRY_MULTI, BPF_TRACE_FEXIT,
    BPF_TRACE_FEXIT_MULTI, BPF_TRACE_FSESSION, BPF_TRACE_FSESSION_MULTI,
};
pub use uprobe::{
    attach_uprobe_session_raw, LinkCreateUprobeMulti, UprobeMultiBridgeOpts, BPF_F_UPROBE_MULTI_RETURN, BPF_LINK_CREATE,
    BPF_TRACE_UPROBE_SESSION,
};

use libbpf_rs::libbpf_sys;
use libbpf_rs::{Link, OpenProgramMut, ProgramMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

/// Whether [`ProgramBridgeExt::attach_uprobe_multi_bridged`] goes through
/// libbpf-rs's own `attach_uprobe_multi_with_opts` (0.26 on); `false` on
/// libbpf-rs 0.25, where the bridge calls libbpf's C function itself.
pub const NATIVE_UPROBE_MULTI: bool = cfg!(not(feature = "api-0-25"));

/// Whether the linked libbpf creates uprobe session links itself (1.6 on);
/// `false`: [`ProgramBridgeExt::attach_uprobe_session`] uses the raw
/// `BPF_LINK_CREATE` ([`attach_uprobe_session_raw`]).
pub fn native_uprobe_session() -> bool {
    crate::version::linked() >= (1, 6)
}

/// A link a bridge made: libbpf's own, or a link fd the raw session bridge
/// created (libbpf 1.5 has no `bpf_link` for it). Dropping it detaches, like
/// dropping a `libbpf_rs::Link`.
#[derive(Debug)]
pub enum BridgeLink {
    /// libbpf's link (everything but the raw session bridge).
    Libbpf(Link),
    /// A link fd from `BPF_LINK_CREATE` ([`attach_uprobe_session_raw`]).
    Fd(OwnedFd),
}

impl BridgeLink {
    /// Whether the raw `BPF_LINK_CREATE` bridge made it (rather than libbpf).
    pub fn is_raw(&self) -> bool {
        matches!(self, BridgeLink::Fd(_))
    }

    /// libbpf's link, if libbpf made it.
    pub fn into_libbpf(self) -> Option<Link> {
        match self {
            BridgeLink::Libbpf(l) => Some(l),
            BridgeLink::Fd(_) => None,
        }
    }

    /// Detaches the program while the link stays open (`BPF_LINK_DETACH`),
    /// as `libbpf_rs::Link::detach`.
    pub fn detach(&self) -> Result<(), BridgeError> {
        match self {
            BridgeLink::Libbpf(l) => l.detach().map_err(BridgeError::from),
            BridgeLink::Fd(fd) => {
                // SAFETY: bpf_link_detach takes a link fd we own and only issues BPF_LINK_DETACH on it.
                if unsafe { libbpf_sys::bpf_link_detach(fd.as_raw_fd()) } != 0 {
                    return Err(BridgeError::last_os_error(|| "BPF_LINK_DETACH".into()));
                }
                Ok(())
            }
        }
    }
}

impl AsFd for BridgeLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            BridgeLink::Libbpf(l) => l.as_fd(),
            BridgeLink::Fd(fd) => fd.as_fd(),
        }
    }
}

impl From<Link> for BridgeLink {
    fn from(l: Link) -> Self {
        BridgeLink::Libbpf(l)
    }
}

/// A libbpf `struct bpf_link *` (NULL + errno on failure, libbpf 1.0 mode,
/// which libbpf-rs enables) as a libbpf-rs Link.
pub(crate) fn link_from_raw(raw: *mut libbpf_sys::bpf_link, what: impl FnOnce() -> String) -> Result<Link, BridgeError> {
    match NonNull::new(raw) {
        // SAFETY: a non-NULL bpf_link from libbpf, owned by nobody else; Link
        // destroys it exactly once on drop.
        Some(p) => Ok(unsafe { Link::from_ptr(p) }),
        None => Err(BridgeError::last_os_error(what)),
    }
}

/// The bridges as methods of a loaded libbpf-rs program, next to its own
/// `attach_*` methods. `use libbpf_harness::bridge::ProgramBridgeExt;` brings
/// them into scope.
pub trait ProgramBridgeExt {
    /// A kprobe session link (attach type 56) on `symbols`, with one cookie
    /// per symbol or none (`&[]`): the program (`SEC("kprobe.session")`)
    /// runs at entry and, unless the entry returned 1, at return.
    ///
    /// Minimum: Linux 6.10 with `CONFIG_FPROBE`, libbpf 1.5 (any libbpf-rs
    /// this crate builds with: none has the flag). Errors: EINVAL on older
    /// kernels, EOPNOTSUPP without fprobe, ESRCH/ENOENT for a symbol that
    /// cannot be traced (each with a [`BridgeError::hint`]).
    ///
    /// ```no_run
    /// # fn f(prog: &libbpf_rs::ProgramMut<'_>) -> Result<(), libbpf_harness::bridge::BridgeError> {
    /// use libbpf_harness::bridge::ProgramBridgeExt;
    /// let link = prog.attach_kprobe_session(&["do_sys_openat2"], &[0x31])?;
    /// # Ok(()) }
    /// ```
    fn attach_kprobe_session(&self, symbols: &[&str], cookies: &[u64]) -> Result<Link, BridgeError>;

    /// libbpf-rs's `attach_kprobe_multi_with_opts` with the `session` flag
    /// (and `retprobe`, `cookies`). `session: false` is a plain kprobe_multi
    /// link (Linux 5.18); `session: true` as [`attach_kprobe_session`](Self::attach_kprobe_session).
    /// libbpf refuses `retprobe` with `session` (EINVAL, before any syscall).
    ///
    /// ```no_run
    /// # fn f(prog: &libbpf_rs::ProgramMut<'_>) -> Result<(), libbpf_harness::bridge::BridgeError> {
    /// use libbpf_harness::bridge::{KprobeMultiSessionOpts, ProgramBridgeExt};
    /// let opts = KprobeMultiSessionOpts { symbols: vec!["do_sys_openat2".into()], session: true, ..Default::default() };
    /// let link = prog.attach_kprobe_multi_with_session_opts(&opts)?;
    /// # Ok(()) }
    /// ```
    fn attach_kprobe_multi_with_session_opts(&self, opts: &KprobeMultiSessionOpts) -> Result<Link, BridgeError>;

    /// A kprobe or kretprobe on `func_name` with cookie, offset and the
    /// retprobe flag together (libbpf's `bpf_program__attach_kprobe_opts`).
    /// libbpf refuses an offset on a kretprobe (EINVAL).
    ///
    /// Minimum: kprobes (`CONFIG_KPROBES`; without them ENOENT or EOPNOTSUPP,
    /// hint "no kprobe PMU"), cookies Linux 5.15; any libbpf.
    ///
    /// ```no_run
    /// # fn f(prog: &libbpf_rs::ProgramMut<'_>) -> Result<(), libbpf_harness::bridge::BridgeError> {
    /// use libbpf_harness::bridge::{KprobeFullOpts, ProgramBridgeExt};
    /// let link = prog.attach_kprobe_full_opts("do_sys_openat2", &KprobeFullOpts { offset: 4, cookie: 7, retprobe: false })?;
    /// # Ok(()) }
    /// ```
    fn attach_kprobe_full_opts(&self, func_name: &str, opts: &KprobeFullOpts) -> Result<Link, BridgeError>;

    /// A kretprobe with a BPF cookie: [`attach_kprobe_full_opts`](Self::attach_kprobe_full_opts)
    /// with `retprobe: true`. Minimum: kprobes, Linux 5.15 (cookies); any libbpf.
    ///
    /// ```no_run
    /// # fn f(prog: &libbpf_rs::ProgramMut<'_>) -> Result<(), libbpf_harness::bridge::BridgeError> {
    /// use libbpf_harness::bridge::ProgramBridgeExt;
    /// let link = prog.attach_kretprobe_with_cookie("do_sys_openat2", 0x31)?;
    /// # Ok(()) }
    /// ```
    fn attach_kretprobe_with_cookie(&self, func_name: &str, cookie: u64) -> Result<Link, BridgeError>;

    /// A uprobe_multi link (or, with `session`, a uprobe session link) on
    /// `binary`, on every libbpf-rs and libbpf this crate builds with:
    /// libbpf-rs's `attach_uprobe_multi_with_opts` where it exists (0.26+),
    /// libbpf's `bpf_program__attach_uprobe_multi` on 0.25, and for a session
    /// on libbpf 1.5 the raw `BPF_LINK_CREATE` ([`attach_uprobe_session_raw`],
    /// returned as [`BridgeLink::Fd`]).
    ///
    /// `pid` is libbpf's: -1 every process, 0 the calling process, N that
    /// process. Give either `syms` or `offsets`.
    ///
    /// Minimum: Linux 6.6 (uprobe_multi), 6.13 (sessions); libbpf 1.5.
    ///
    /// ```no_run
    /// # fn f(prog: &libbpf_rs::ProgramMut<'_>) -> Result<(), libbpf_harness::bridge::BridgeError> {
    /// use libbpf_harness::bridge::{ProgramBridgeExt, UprobeMultiBridgeOpts};
    /// let opts = UprobeMultiBridgeOpts { syms: vec!["pc_leaf".into(), "pc_mid".into()], cookies: vec![1, 2], ..Default::default() };
    /// let link = prog.attach_uprobe_multi_bridged(-1, "/tmp/pcart/probe-target", &opts)?;
    /// # Ok(()) }
    /// ```
    fn attach_uprobe_multi_bridged(&self, pid: i32, binary: &str, opts: &UprobeMultiBridgeOpts) -> Result<BridgeLink, BridgeError>;

    /// A uprobe session link (attach type 57) on `symbols` of `binary`, with
    /// one cookie per symbol or none: the program (`SEC("uprobe.session")`)
    /// runs at entry and, unless the entry returned 1, at return.
    /// libbpf-rs's `UprobeMultiOpts { session: true }` where the linked libbpf
    /// is 1.6+, the raw `BPF_LINK_CREATE` bridge on libbpf 1.5 (whose program
    /// needs [`OpenProgramBridgeExt::type_uprobe_session_section`] before load).
    ///
    /// `pid` is libbpf's: -1 every process, 0 the caller, N that process.
    /// Minimum: Linux 6.13 (EINVAL before, hint "kernel lacks uprobe
    /// sessions (Linux 6.13+)"), libbpf 1.5.
    ///
    /// ```no_run
    /// # fn f(prog: &libbpf_rs::ProgramMut<'_>, pid: i32) -> Result<(), libbpf_harness::bridge::BridgeError> {
    /// use libbpf_harness::bridge::ProgramBridgeExt;
    /// let link = prog.attach_uprobe_session(pid, "/tmp/pcart/probe-target", &["pc_leaf"], &[])?;
    /// # Ok(()) }
    /// ```
    fn attach_uprobe_session(&self, pid: i32, binary: &str, symbols: &[&str], cookies: &[u64]) -> Result<BridgeLink, BridgeError>;

    /// An fentry, fexit or fsession link with a BPF cookie, which
    /// `bpf_get_attach_cookie()` returns in the program (both halves of an
    /// fsession): libbpf's `bpf_program__attach_trace_opts`. The target was
    /// named before load ([`OpenProgramBridgeExt::set_tracing_target`]).
    ///
    /// Minimum: Linux 5.5 (fentry/fexit), 6.0 (cookies), 7.0 (fsession,
    /// x86_64); libbpf 1.0. An fentry on a function without an ftrace entry
    /// fails with EBUSY (hint "notrace").
    ///
    /// ```no_run
    /// # fn f(prog: &libbpf_rs::ProgramMut<'_>) -> Result<(), libbpf_harness::bridge::BridgeError> {
    /// use libbpf_harness::bridge::ProgramBridgeExt;
    /// let link = prog.attach_trace_with_cookie(0x41)?;
    /// # Ok(()) }
    /// ```
    fn attach_trace_with_cookie(&self, cookie: u64) -> Result<Link, BridgeError>;

    /// A tracing multi link: the program (loaded as `SEC("fentry.multi")`,
    /// `fexit.multi` or `fsession.multi`, typed by
    /// [`OpenProgramBridgeExt::type_tracing_section`] on a libbpf that does
    /// not know the section) on every kernel function of `functions`, with
    /// one cookie each or none. In the program, read arguments with
    /// `bpf_get_func_arg()` and the return value with `bpf_get_func_ret()`:
    /// a multi program's context has no typed arguments.
    ///
    /// Minimum: a kernel with the tracing multi link (probe it: 7.3 has it;
    /// EINVAL without), x86_64; any libbpf. Functions must be in vmlinux BTF
    /// (ENOENT otherwise) and traceable.
    ///
    /// ```no_run
    /// # fn f(prog: &libbpf_rs::ProgramMut<'_>) -> Result<(), libbpf_harness::bridge::BridgeError> {
    /// use libbpf_harness::bridge::{ProgramBridgeExt, TracingKind};
    /// let link = prog.attach_tracing_multi(TracingKind::FentryMulti, &["__x64_sys_close", "__x64_sys_dup"], &[1, 2])?;
    /// # Ok(()) }
    /// ```
    fn attach_tracing_multi(&self, kind: TracingKind, functions: &[&str], cookies: &[u64]) -> Result<BridgeLink, BridgeError>;
}

impl ProgramBridgeExt for ProgramMut<'_> {
    fn attach_kprobe_session(&self, symbols: &[&str], cookies: &[u64]) -> Result<Link, BridgeError> {
        let opts = KprobeMultiSessionOpts {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            cookies: cookies.to_vec(),
            retprobe: false,
            session: true,
        };
        kprobe::attach_kprobe_multi(self, &opts)
    }

    fn attach_kprobe_multi_with_session_opts(&self, opts: &KprobeMultiSessionOpts) -> Result<Link, BridgeError> {
        kprobe::attach_kprobe_multi(self, opts)
    }

    fn attach_kprobe_full_opts(&self, func_name: &str, opts: &KprobeFullOpts) -> Result<Link, BridgeError> {
        kprobe::attach_kprobe(self, func_name, opts)
    }

    fn attach_kretprobe_with_cookie(&self, func_name: &str, cookie: u64) -> Result<Link, BridgeError> {
        kprobe::attach_kprobe(self, func_name, &KprobeFullOpts { offset: 0, cookie, retprobe: true })
    }

    fn attach_uprobe_multi_bridged(&self, pid: i32, binary: &str, opts: &UprobeMultiBridgeOpts) -> Result<BridgeLink, BridgeError> {
        if opts.session && !native_uprobe_session() {
            // libbpf 1.5: no session flag in bpf_uprobe_multi_opts.
            return attach_uprobe_session_raw(self, pid, binary, opts).map(BridgeLink::Fd);
        }
        uprobe::attach_uprobe_multi(self, pid, binary, opts).map(BridgeLink::Libbpf)
    }

    fn attach_uprobe_session(&self, pid: i32, binary: &str, symbols: &[&str], cookies: &[u64]) -> Result<BridgeLink, BridgeError> {
        let opts = UprobeMultiBridgeOpts {
            syms: symbols.iter().map(|s| s.to_string()).collect(),
            cookies: cookies.to_vec(),
            session: true,
            ..Default::default()
        };
        self.attach_uprobe_multi_bridged(pid, binary, &opts)
    }

    fn attach_trace_with_cookie(&self, cookie: u64) -> Result<Link, BridgeError> {
        tracing::attach_trace_cookie(self, cookie)
    }

    fn attach_tracing_multi(&self, kind: TracingKind, functions: &[&str], cookies: &[u64]) -> Result<BridgeLink, BridgeError> {
        tracing::attach_tracing_multi(self, kind, functions, cookies)
    }
}

/// The bridge for an opened, not yet loaded, libbpf-rs program.
pub trait OpenProgramBridgeExt {
    /// libbpf 1.5 does not know the section `uprobe.session` (1.6 added it):
    /// it leaves such a program untyped and the load fails ("missing BPF
    /// prog type"). This types it as libbpf 1.6 does: program type KPROBE,
    /// expected attach type `BPF_TRACE_UPROBE_SESSION` (57), which the kernel
    /// needs at load (the session kfuncs check it), and `BPF_F_SLEEPABLE` for
    /// `uprobe.session.s`. It acts only on a `uprobe.session` /
    /// `uprobe.session.s` program libbpf left untyped, so it is a no-op on
    /// libbpf 1.6+; returns whether it acted. Call it before `load()`.
    ///
    /// ```no_run
    /// use libbpf_harness::bridge::OpenProgramBridgeExt;
    /// # fn main() -> Result<(), libbpf_rs::Error> {
    /// let mut open = libbpf_rs::ObjectBuilder::default().open_file("sessions.bpf.o")?;
    /// for mut prog in open.progs_mut() {
    ///     if prog.type_uprobe_session_section() {
    ///         eprintln!("{:?}: typed for libbpf 1.5", prog.name());
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    fn type_uprobe_session_section(&mut self) -> bool;

    /// Types a BTF-based tracing program whose section the linked libbpf does
    /// not know, as a libbpf that knows it would: BPF_PROG_TYPE_TRACING with
    /// the section's attach type (`fsession`: 58, before libbpf 1.7;
    /// `fentry.multi`/`fexit.multi`/`fsession.multi`: 59/60/61, every
    /// release). Acts only on a program libbpf left untyped; returns the kind
    /// it typed it as. Call it before `load()`.
    ///
    /// ```no_run
    /// use libbpf_harness::bridge::OpenProgramBridgeExt;
    /// # fn main() -> Result<(), libbpf_rs::Error> {
    /// let mut open = libbpf_rs::ObjectBuilder::default().open_file("tracing.bpf.o")?;
    /// for mut prog in open.progs_mut() {
    ///     prog.type_tracing_section();
    /// }
    /// # Ok(()) }
    /// ```
    fn type_tracing_section(&mut self) -> Option<TracingKind>;

    /// Names the kernel function an fentry/fexit/fsession program is bound
    /// to (`bpf_program__set_attach_target`), before load. libbpf finds it in
    /// vmlinux (or a module's) BTF: ESRCH when there is no such BTF FUNC
    /// (class `not-found`, with a hint).
    fn set_tracing_target(&mut self, function: &str) -> Result<(), BridgeError>;
}

impl OpenProgramBridgeExt for OpenProgramMut<'_> {
    fn type_uprobe_session_section(&mut self) -> bool {
        uprobe::type_unknown_session_section(self)
    }

    fn type_tracing_section(&mut self) -> Option<TracingKind> {
        let kind = TracingKind::from_section(&self.section().to_string_lossy())?;
        tracing::type_unknown_section(self, kind).then_some(kind)
    }

    fn set_tracing_target(&mut self, function: &str) -> Result<(), BridgeError> {
        tracing::set_target(self, function)
    }
}
