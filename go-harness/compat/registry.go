// Package compat is the Go side of probeconf's compatibility registry: what
// cilium/ebpf lacks or does differently from libbpf, and which bridge the
// harness uses so that a case runs the same way under both loaders, plus the
// harness-only glue (the protocol's pid scope, CiliumPID). The bridges
// themselves are the bridge module (go-harness/bridge, import path
// probeconf/bridge), which tool authors import too; entries that say
// bridge.X name the bridge module.
//
// Every bridge has one registry entry; a probe attached through a bridge is
// reported with via "compat" and the entry's id, so a verdict can say which
// results depend on harness code rather than on the library alone.
package compat

// Status says how the harness covers a feature.
type Status string

const (
	// Native: the library does it; the entry documents a convention to normalise.
	Native Status = "native"
	// Compat: the library lacks it or gets it wrong; the harness bridges it.
	Compat Status = "compat"
	// Missing: neither the library nor the harness can do it.
	Missing Status = "missing"
)

// Entry is one row of the registry (printed by `probeconf-harness gaps`).
type Entry struct {
	ID         string `json:"id"`
	Library    string `json:"library"`
	Versions   string `json:"versions"`
	Feature    string `json:"feature"`
	Status     Status `json:"status"`
	Workaround string `json:"workaround"`
}

// Bridge ids, as reported in the `attached` line.
const (
	BridgeUprobeSession      = "cilium-uprobe-session"
	BridgePIDSemantics       = "cilium-pid-semantics"
	BridgeKprobeMultiSyscall = "cilium-kprobe-multi-syscall-prefix"
	BridgeDataSection        = "cilium-datasec-variables"
	BridgeWeakKfunc          = "cilium-weak-kfunc"
	BridgeUSDT               = "cilium-usdt"
	BridgeKprobeErrors       = "cilium-kprobe-unsupported-error"
	BridgeKprobeSessionRet   = "cilium-kprobe-session-return"
	BridgeSessionKfuncVar    = "cilium-session-kfunc-variant"
	BridgeTracingCookie      = "cilium-tracing-cookie"
	BridgeTracingNotFound    = "cilium-tracing-missing-function"
	BridgeFsessionLoad       = "cilium-fsession-load"
	BridgeFsessionLink       = "cilium-fsession-link"
	BridgeTracingMulti       = "cilium-tracing-multi"
)

const library = "github.com/cilium/ebpf"

// Registry is the Go side of the compatibility registry.
var Registry = []Entry{
	{
		ID:       BridgeUprobeSession,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.17.3, v0.20.0, v0.21.0, v0.22.0; the section is typed from v0.21.0, unknown before)",
		Feature: "uprobe session links (BPF_TRACE_UPROBE_SESSION = 57, kernel >= 6.13): kind uprobe.session, " +
			"and session: true on uprobe.multi / uretprobe.multi; with retprobe: true, the RETURN flag on a session link",
		Status: Compat,
		Workaround: "Executable.UprobeMulti always links with attach type UPROBE_MULTI (48) and the kernel " +
			"answers EINVAL for a session program. The harness issues BPF_LINK_CREATE (cmd 28) itself with " +
			"attach type 57 and the uprobe_multi part of bpf_attr, resolving symbols to file offsets as cilium " +
			"does (like v0.21.0 on: stat first, ELF parsed only for symbol targets), and wraps the fd with link.NewFromFD. Where " +
			"cilium does not know the section, the program spec is retyped to Kprobe with expected attach type 57 " +
			"before load. Every uprobe-family probe whose session flag is true goes through it, whatever its kind: the program " +
			"keeps the expected attach type it was loaded with and the kernel judges the pair (a uprobe.multi " +
			"program on a session link: EINVAL on 6.18). With retprobe: true the bridge sets " +
			"BPF_F_UPROBE_MULTI_RETURN (1) in uprobe_multi.flags. libbpf refuses session+retprobe itself " +
			"(bpf_program__attach_uprobe_multi: -EINVAL before any syscall); the bridge does not emulate that " +
			"refusal, so such a probe measures the kernel, not libbpf: on 6.18 the link is created and the " +
			"session program runs at return only (bpf_session_is_return() = 1, session cookie 0, no entry run).",
	},
	{
		ID:       BridgePIDSemantics,
		Library:  library,
		Versions: "all",
		Feature:  "pid filter of uprobe / uprobe_multi attachments",
		Status:   Native,
		Workaround: `cilium: PID 0 = all processes, N = that process. libbpf: -1 = all, 0 = the calling ` +
			`process. The protocol says {"scope":"all"} or {"scope":"pid","pid":N}; the harness maps ` +
			`all to PID 0 and pid N to PID N (compat.CiliumPID).`,
	},
	{
		ID:       BridgeKprobeMultiSyscall,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.22.0 source)",
		Feature:  "syscall symbols in kprobe.multi / kretprobe.multi / kprobe.session",
		Status:   Compat,
		Workaround: "link.Kprobe retries a symbol with the arch prefix (__x64_sys_...) but link.KprobeMulti " +
			"does not. For these kinds the harness rewrites a symbol sys_xxx that is not in /proc/kallsyms " +
			"to __x64_sys_xxx (the running arch's prefix) when that one is.",
	},
	{
		ID:       BridgeKprobeErrors,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.22.0)",
		Feature:  "error for kprobe/kretprobe on a kernel without CONFIG_KPROBES",
		Status:   Compat,
		Workaround: "link.Kprobe falls back to tracefs when the kprobe PMU is missing and reports the tracefs " +
			"failure (\"neither debugfs nor tracefs are mounted\", or ENOENT on kprobe_events), which classifies " +
			"as other/not-found. When /sys/bus/event_source/devices/kprobe is absent the harness wraps the error " +
			"with ebpf.ErrNotSupported (message and errno kept), so it classifies as unsupported like libbpf's.",
	},
	{
		ID:       BridgeKprobeSessionRet,
		Library:  library,
		Versions: "checked v0.17.3, v0.20.0, v0.21.0, v0.22.0 (KprobeMultiOptions.Session in each)",
		Feature:  "kprobe session link with the RETURN flag (kprobe.session with retprobe: true, or kretprobe.multi with session: true)",
		Status:   Native,
		Workaround: "libbpf refuses session together with retprobe before any syscall (bpf_program__attach_kprobe_multi_opts: " +
			"-EINVAL). cilium expresses the pair: KretprobeMulti with KprobeMultiOptions.Session creates attach type " +
			"KPROBE_SESSION (56) with BPF_F_KPROBE_MULTI_RETURN. The harness passes it as asked (no bridge, via native) " +
			"and reports what the kernel says; the result measures the kernel, not libbpf. Not measured on a kernel with " +
			"kprobe_multi yet (the 6.18 test host has none).",
	},
	{
		ID:       BridgeDataSection,
		Library:  library,
		Versions: ">= v0.21.0 (checked v0.21.0, v0.22.0; v0.17.3 and v0.20.0 keep Contents)",
		Feature:  "setting a data section's bytes before load",
		Status:   Compat,
		Workaround: "v0.22.0 rebuilds a data section's contents from CollectionSpec.Variables at load time " +
			"(MapSpec.updateDataSection), so bytes written only into MapSpec.Contents are silently replaced " +
			"by the ELF's values. The harness writes the bytes into Contents and into every VariableSpec of " +
			"the section (offsets from the section's BTF Datasec), and reads the map back after load to check.",
	},
	{
		ID:       BridgeWeakKfunc,
		Library:  library,
		Versions: "all (measured here with v0.22.0 and v0.20.0: case session-wrong-kfunc-prototype, every kernel with sessions)",
		Feature:  "__weak kfuncs whose prototype differs from the kernel's; ___flavor suffixes on kfuncs",
		Status:   Missing,
		Workaround: "libbpf treats an incompatible __weak kfunc as missing and strips ___flavor suffixes; " +
			"cilium does neither and fails the load (\"function param mismatch\" for the session kfuncs on " +
			">= 7.0; the classifier marks it invalid). The harness does not bridge this: the runner loads the object " +
			"built for the running kernel's session kfunc prototypes (sessions.ctx.bpf.o on >= 7.0), or sends " +
			"both builds and lets the harness pick (cilium-session-kfunc-variant).",
	},
	{
		ID:       BridgeSessionKfuncVar,
		Library:  library,
		Versions: "all (checked v0.22.0: btf.LoadKernelSpec, Spec.TypeByName with *btf.Func)",
		Feature: "choosing the object build for the running kernel's session-kfunc prototype " +
			"(bpf_session_is_return / bpf_session_cookie: no argument on 6.10-6.19, void *ctx from 7.0)",
		Status: Compat,
		Workaround: "cilium cannot load one object for both prototypes (see cilium-weak-kfunc) and has no " +
			"way to pick among builds. With \"objects\": {\"noarg\": PATH, \"ctx\": PATH} in the request the " +
			"harness reads the kernel BTF itself (bridge.SessionKfuncPrototype: btf.LoadKernelSpec, FUNC " +
			"bpf_session_cookie: 0 params = noarg, 1 = ctx, absent = none) and loads the ctx build on ctx " +
			"kernels, the noarg build otherwise (also when the kernel has no session kfuncs). The attached line " +
			"and later error lines say object_variant and object_reason. The same decision as the Rust runner's " +
			"(the libbpf harness's bridge::session_kfunc_prototype, libbpf BTF). With a plain \"object\" the harness loads what " +
			"it is told, so the runner can still load the wrong build on purpose.",
	},
	{
		ID:       BridgeUSDT,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.17.3, v0.20.0, v0.21.0, v0.22.0 on Linux 6.18); mirrors libbpf 1.7's usdt.c and usdt.bpf.h",
		Feature: "USDT probes (kind usdt: a program built with libbpf's usdt.bpf.h, section usdt; targets provider:name " +
			"from .note.stapsdt; bpf_usdt_arg/bpf_usdt_arg_cnt/bpf_usdt_cookie)",
		Status: Compat,
		Workaround: "cilium/ebpf has no USDT support, and cannot even load the object libbpf attaches. The bridge loads that same object " +
			"and does what libbpf's usdt manager does. Load: (1) usdt.bpf.h's maps are __weak and cilium refuses weak map references " +
			"(\"unsupported binding: STB_WEAK\"): they are rebound STB_GLOBAL in a private copy of the ELF (one object: weak is the definition); " +
			"cilium before v0.21.0 also refuses calls to weak functions, so if the object still does not parse, its weak subprograms are rebound too; " +
			"(2) bpf_usdt_arg, bpf_usdt_arg_cnt and bpf_usdt_cookie are __weak __hidden subprograms, which libbpf marks static in BTF " +
			"(mark_btf_static) and cilium leaves global, so the verifier rejects bpf_usdt_arg on its own (\"R3 invalid mem access " +
			"'mem_or_null'\"): their BTF FUNC linkage is set static; (3) LINUX_HAS_BPF_COOKIE (extern __kconfig): cilium v0.22.0 resolves " +
			"only LINUX_KERNEL_VERSION and LINUX_HAS_SYSCALL_WRAPPER and takes any other .kconfig extern for a CONFIG_ option, failing the " +
			"load (`resolve .kconfig: config option \"LINUX_HAS_BPF_COOKIE\" does not exist on this kernel`); the bridge rewrites each " +
			"ldimm64 cilium tagged as a .kconfig load (its private tag read by reflection) into a load from a BPF_F_RDONLY_PROG array map " +
			"\".kconfig\" (frozen by cilium) holding libbpf's value: whether bpf_get_attach_cookie() loads in a tracepoint program " +
			"(features.HaveProgramHelper, libbpf's FEAT_BPF_COOKIE; true on 6.18); (4) the usdt section is typed as libbpf types it: kprobe " +
			"with expected attach type UPROBE_MULTI when the kernel has uprobe_multi (cilium gives none, and UprobeMulti then gets EINVAL). " +
			"Sites: .note.stapsdt notes (owner stapsdt, type 3; a malformed note fails the whole section, as in libbpf), the pc adjusted " +
			"by .stapsdt.base's actual address minus the note's base (not the semaphore: libbpf does not), pc and semaphore turned into " +
			"file offsets through their PT_LOAD segments (executable for the pc, not for the semaphore; for probe-target this equals " +
			"the offset through the .probes section); for a shared object without BPF cookies, runtime addresses from /proc/PID/maps " +
			"(a pid is then required). nop;nop5: on x86_64, when the kernel has the uprobe syscall (syscall 336 answers ENXIO outside the " +
			"trampoline) and the 6 bytes at the site are 90 0f 1f 44 00 00, the probe moves to the nop5 (file offset and address + 1), as " +
			"libbpf 1.7 does, so both loaders attach at the same address (probeconf:nop5+0x1 on 6.18); nop;nop10 is not moved. " +
			"Argument specs: libbpf's x86_64 parse_usdt_arg, its sscanf patterns reproduced with glibc's semantics (constants, registers " +
			"incl. 8/16/32-bit names read from the 64-bit pt_regs slot and narrowed by arg_bitshift = 64 - 8*size, memory (reg) and " +
			"off(reg), SIB), with libbpf's errnos: EINVAL for what it does not recognise (e.g. -8@sym(%rip): attach/invalid naming the " +
			"argument), ENOENT for an unknown register, E2BIG over 12 arguments; checked byte for byte against libbpf's own parser " +
			"compiled from the vendored usdt.c. Specs are written in libbpf 1.7's layout (struct __bpf_usdt_spec: 304 bytes, 12 arg " +
			"specs of 24 bytes: val_off @0, arg_type bits 64-71, idx_reg_off bits 80-91, scale_bitshift bits 92-95, reg_off @14, " +
			"arg_signed @16, arg_bitshift @17; usdt_cookie @288, arg_cnt @296), after checking the object's BTF has exactly that layout " +
			"(refused otherwise, e.g. a pre-1.7 usdt.bpf.h with 16-byte arg specs); usdt_cookie is the user's cookie. Spec ids: one per " +
			"distinct argument string within one attachment, in order from 0 per object (= per probe: each probe loads its own " +
			"instance), written to __bpf_usdt_specs; without BPF cookies each site's address also goes to __bpf_usdt_ip_to_spec_id " +
			"(BPF_NOEXIST). Attach: one attachment per target (as the libbpf loader calls bpf_program__attach_usdt per target): one " +
			"Executable.UprobeMulti link (Addresses = file offsets, Cookies = spec ids, RefCtrOffsets = semaphore offsets, PID), or, " +
			"when the kernel lacks uprobe_multi with the process-wide pid filter (libbpf's FEAT_UPROBE_MULTI_LINK probe) or cilium " +
			"answers ErrNotSupported, one Executable.Uprobe per site (Cookie = spec id when cookies exist, RefCtrOffset). A semaphore " +
			"needs the uprobe PMU's ref_ctr_offset (else unsupported, as libbpf). Reported via compat, bridge cilium-usdt. Not " +
			"mirrored: architectures other than x86_64 (unsupported), libbpf's reuse of freed spec ids (links live as long as the object).",
	},
	{
		ID:       BridgeTracingCookie,
		Library:  library,
		Versions: "checked v0.17.3, v0.20.0, v0.21.0, v0.22.0 (ProgramSpec.AttachTo, TracingOptions.Cookie in each; cases/tracing pass on 7.3 with each, with v0.22.0 on 6.1, 6.18 and 7.0 too)",
		Feature:  "fentry / fexit bound to a kernel function named at run time, with a BPF cookie (link_create.tracing.cookie, kernel >= 6.0)",
		Status:   Native,
		Workaround: "cilium does both: the harness sets ProgramSpec.AttachTo to the target before load (cilium resolves it in the " +
			"kernel's BTF, vmlinux then modules, and loads with that attach_btf_id) and links with link.AttachTracing " +
			"(TracingOptions{AttachType: AttachTraceFEntry/AttachTraceFExit, Cookie}); via native. libbpf needs the same two steps " +
			"(set_attach_target; attach_trace_opts for the cookie, which libbpf-rs lacks: libbpf-rs-tracing-cookie). One quirk, " +
			"read in cilium's link/tracing.go, not met by a case: when BPF_LINK_CREATE answers EINVAL or ENOTSUPP, AttachTracing " +
			"falls back to BPF_RAW_TRACEPOINT_OPEN, and with a non-zero cookie it then reports \"create raw tracepoint with cookie: " +
			"not supported\" (ErrNotSupported) instead of the kernel's EINVAL, so a refused link reads as a missing feature.",
	},
	{
		ID:       BridgeTracingNotFound,
		Library:  library,
		Versions: "<= v0.22.0 (findProgramTargetInKernel; bridge.TestFentryMissingFunctionInCilium with v0.17.3 and v0.22.0; cases fentry-missing-symbol and fentry-no-btf pass on 7.3 with v0.17.3 to v0.22.0)",
		Feature:  "error for fentry / fexit on a kernel function that is not in the kernel's BTF (cases fentry-missing-symbol, fentry-no-btf)",
		Status:   Compat,
		Workaround: "cilium reports a target it cannot find in vmlinux or module BTF as an UnsupportedFeatureError " +
			"(\"attach Tracing/TraceFEntry: fentry NAME not supported\", errors.Is ErrNotSupported), exactly as it reports a kernel " +
			"without BTF, so the function's absence reads as a kernel feature missing; libbpf's set_attach_target answers ESRCH " +
			"(not-found). When such a load fails, the harness looks the function up itself (bridge.KernelFuncID: FUNC in vmlinux " +
			"BTF) and, if the kernel has BTF but no such function, reports the error as not-found (ENOENT), cilium's text kept.",
	},
	{
		ID:       BridgeFsessionLoad,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.17.3, v0.20.0, v0.21.0, v0.22.0: the section is typed from v0.22.0, unknown before; with the bridge, cases/tracing pass on 7.3 with each and on 7.0 with v0.22.0)",
		Feature:  "loading fsession programs (BPF_TRACE_FSESSION = 58, kernel >= 7.0): kind fsession",
		Status:   Compat,
		Workaround: "v0.22.0 types SEC(\"fsession\") as Tracing with attach type 58 but resolves AttachTo only for the attach types " +
			"it knows (fentry, fexit, fmod_ret, raw_tp, iter, lsm, struct_ops) and ignores the rest, so it loads the program with " +
			"attach_btf_id 0 and the kernel refuses it (measured on 7.3: \"Tracing programs must provide btf_id\", EINVAL, which cilium " +
			"reports as a verifier error, class invalid, for a program the kernel accepts); earlier versions do not know the section " +
			"and skip the program at load (v0.17.3 measured). " +
			"ProgramSpec has no field for a BTF id, so no public route exists. The bridge (bridge.LoadFsession) issues BPF_PROG_LOAD " +
			"itself from cilium's public pieces: the spec's instructions copied, map references associated with the maps cilium " +
			"created for the same collection (the program is removed from the spec before NewCollection), kfunc calls resolved to " +
			"vmlinux BTF FUNC ids, func and line info (btf.MarshalExtInfos, btf.NewHandle), expected attach type 58, attach_btf_id = " +
			"the target's FUNC id (bridge.KernelFuncID), the verifier log captured on failure (an *ebpf.VerifierError, so a refusal " +
			"is invalid as under cilium); the fd is wrapped with ebpf.NewProgramFromFD. It refuses what it cannot do rather than load " +
			"another program: CO-RE relocations, .kconfig/.ksyms references, kfuncs and targets in modules, poisoning a missing " +
			"__weak kfunc (an error wrapping ErrNotSupported instead); kfunc prototypes are left to the verifier. A kernel without " +
			"fsession (EINVAL, and the kernel BTF's enum bpf_attach_type lacks BPF_TRACE_FSESSION) or a JIT without it (EOPNOTSUPP) " +
			"is reported unsupported. Every fsession probe goes through it.",
	},
	{
		ID:       BridgeFsessionLink,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.17.3, v0.20.0, v0.21.0, v0.22.0; measured on 7.0 and 7.3)",
		Feature:  "linking an fsession program with a BPF cookie",
		Status:   Compat,
		Workaround: "link.AttachTracing accepts only the attach types it knows and refuses 58 (\"invalid attach type: AttachType(58)\"). " +
			"With AttachType AttachNone it opens the link with BPF_RAW_TRACEPOINT_OPEN, which the kernel accepts for a loaded " +
			"fsession program (measured on 7.0 and 7.3: both halves run) but which carries no cookie: the harness does that for an fsession probe without a cookie (the " +
			"link is native; the probe still reports cilium-fsession-load). With a cookie, the bridge (bridge.AttachFsession) " +
			"issues BPF_LINK_CREATE (cmd 28) with attach type 58, target_btf_id 0 and the cookie in link_create.tracing.cookie, and " +
			"wraps the fd with link.NewFromFD. Such a probe reports bridge \"cilium-fsession-load,cilium-fsession-link\".",
	},
	{
		ID:       BridgeTracingMulti,
		Library:  library,
		Versions: "<= v0.22.0 (checked v0.17.3, v0.20.0, v0.21.0, v0.22.0: none knows the sections; with the bridge, cases/tracing pass on 7.3 with each)",
		Feature: "the tracing multi link: fentry.multi / fexit.multi / fsession.multi (attach types 59, 60, 61, link type 15; " +
			"in Linux 7.3's BTF), one program on many kernel functions with a cookie each",
		Status: Compat,
		Workaround: "cilium knows neither the sections nor the link: SEC(\"fentry.multi\") and the others stay UnspecifiedProgram, " +
			"which NewCollection skips. Load: bridge.PrepareTracingMultiSpec types the spec Tracing with attach type 59/60/61 and " +
			"no AttachTo, and cilium loads it with attach_btf_id 0, which is what the kernel wants (it binds such a program to its " +
			"bpf_multi_func placeholder); a kernel without the attach type answers EINVAL, which cilium reports as a verifier " +
			"error (invalid), so the harness reports unsupported when the kernel BTF's enum bpf_attach_type lacks " +
			"BPF_TRACE_FENTRY_MULTI (bridge.TracingMultiError). Link: bridge.TracingMulti resolves every target to its FUNC id in " +
			"vmlinux BTF (a missing one: not-found, ENOENT, before any syscall) and issues BPF_LINK_CREATE (cmd 28) with " +
			"link_create.tracing_multi {ids u32[], cookies u64[], cnt} (offsets 16, 24, 32), wrapping the fd with link.NewFromFD " +
			"(a plain RawLink). vmlinux functions only: module targets need the module's BTF fd at load, which cilium cannot set.",
	},
}
