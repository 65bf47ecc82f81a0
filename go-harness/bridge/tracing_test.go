package bridge

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"probeconf/bridge/bridgetest"
)

// The bpf_attr prefixes of the tracing bridges, from include/uapi/linux/bpf.h
// (tracing: 6.0+; tracing_multi: Linux 7.3's BTF, struct link_create [1409];
// BPF_PROG_LOAD: 6.4+ for log_true_size): byte offsets and sizes.
var (
	wantLinkCreateTracing = map[string]uintptr{
		"prog_fd": 0, "target_fd": 4, "attach_type": 8, "flags": 12,
		"tracing.target_btf_id": 16, "tracing.cookie": 24, "sizeof(tracing part)": 32,
	}
	wantLinkCreateTracingMulti = map[string]uintptr{
		"prog_fd": 0, "target_fd": 4, "attach_type": 8, "flags": 12,
		"tracing_multi.ids": 16, "tracing_multi.cookies": 24, "tracing_multi.cnt": 32, "sizeof(tracing_multi part)": 40,
	}
	wantProgLoad = map[string]uintptr{
		"prog_type": 0, "insn_cnt": 4, "insns": 8, "license": 16, "log_level": 24, "log_size": 28, "log_buf": 32,
		"kern_version": 40, "prog_flags": 44, "prog_name": 48, "prog_ifindex": 64, "expected_attach_type": 68,
		"prog_btf_fd": 72, "func_info_rec_size": 76, "func_info": 80, "func_info_cnt": 88, "line_info_rec_size": 92,
		"line_info": 96, "line_info_cnt": 104, "attach_btf_id": 108, "attach_btf_obj_fd": 112, "core_relo_cnt": 116,
		"fd_array": 120, "core_relos": 128, "core_relo_rec_size": 136, "log_true_size": 140, "sizeof(prog_load part)": 144,
	}
)

func goLinkCreateTracing() map[string]uintptr {
	var a linkCreateTracingAttr
	return map[string]uintptr{
		"prog_fd": unsafe.Offsetof(a.progFD), "target_fd": unsafe.Offsetof(a.targetFD),
		"attach_type": unsafe.Offsetof(a.attachType), "flags": unsafe.Offsetof(a.flags),
		"tracing.target_btf_id": unsafe.Offsetof(a.targetBTFID), "tracing.cookie": unsafe.Offsetof(a.cookie),
		"sizeof(tracing part)": unsafe.Sizeof(a),
	}
}

func goLinkCreateTracingMulti() map[string]uintptr {
	var a linkCreateTracingMultiAttr
	return map[string]uintptr{
		"prog_fd": unsafe.Offsetof(a.progFD), "target_fd": unsafe.Offsetof(a.targetFD),
		"attach_type": unsafe.Offsetof(a.attachType), "flags": unsafe.Offsetof(a.flags),
		"tracing_multi.ids": unsafe.Offsetof(a.ids), "tracing_multi.cookies": unsafe.Offsetof(a.cookies),
		"tracing_multi.cnt": unsafe.Offsetof(a.cnt), "sizeof(tracing_multi part)": unsafe.Sizeof(a),
	}
}

func goProgLoad() map[string]uintptr {
	var a progLoadAttr
	return map[string]uintptr{
		"prog_type": unsafe.Offsetof(a.progType), "insn_cnt": unsafe.Offsetof(a.insnCnt), "insns": unsafe.Offsetof(a.insns),
		"license": unsafe.Offsetof(a.license), "log_level": unsafe.Offsetof(a.logLevel), "log_size": unsafe.Offsetof(a.logSize),
		"log_buf": unsafe.Offsetof(a.logBuf), "kern_version": unsafe.Offsetof(a.kernVersion), "prog_flags": unsafe.Offsetof(a.progFlags),
		"prog_name": unsafe.Offsetof(a.progName), "prog_ifindex": unsafe.Offsetof(a.progIfindex),
		"expected_attach_type": unsafe.Offsetof(a.expectedAttachType), "prog_btf_fd": unsafe.Offsetof(a.progBTFFD),
		"func_info_rec_size": unsafe.Offsetof(a.funcInfoRecSize), "func_info": unsafe.Offsetof(a.funcInfo),
		"func_info_cnt": unsafe.Offsetof(a.funcInfoCnt), "line_info_rec_size": unsafe.Offsetof(a.lineInfoRecSize),
		"line_info": unsafe.Offsetof(a.lineInfo), "line_info_cnt": unsafe.Offsetof(a.lineInfoCnt),
		"attach_btf_id": unsafe.Offsetof(a.attachBTFID), "attach_btf_obj_fd": unsafe.Offsetof(a.attachBTFObjFD),
		"core_relo_cnt": unsafe.Offsetof(a.coreReloCnt), "fd_array": unsafe.Offsetof(a.fdArray),
		"core_relos": unsafe.Offsetof(a.coreRelos), "core_relo_rec_size": unsafe.Offsetof(a.coreReloRecSize),
		"log_true_size": unsafe.Offsetof(a.logTrueSize), "sizeof(prog_load part)": unsafe.Sizeof(a),
	}
}

func TestTracingAttrLayouts(t *testing.T) {
	for name, tc := range map[string]struct{ got, want map[string]uintptr }{
		"link_create.tracing":       {goLinkCreateTracing(), wantLinkCreateTracing},
		"link_create.tracing_multi": {goLinkCreateTracingMulti(), wantLinkCreateTracingMulti},
		"prog_load":                 {goProgLoad(), wantProgLoad},
	} {
		for field, want := range tc.want {
			if tc.got[field] != want {
				t.Errorf("%s: %s: Go offset %d, uapi %d", name, field, tc.got[field], want)
			}
		}
	}
}

// TestTracingAttrsMatchUapi compiles the layouts from a uapi linux/bpf.h with
// gcc: link_create.tracing and BPF_PROG_LOAD from any header with
// BPF_TRACE_FSESSION (libbpf 1.7's vendored copy), link_create.tracing_multi
// only from a header that has it (libbpf's development tree; point
// PROBECONF_UAPI_INCLUDE at it), else that part is skipped and said so.
func TestTracingAttrsMatchUapi(t *testing.T) {
	gcc := bridgetest.RequireGCC(t)
	// The first header with tracing_multi, else the first with fsession.
	inc, header, tried := uapiWith("BPF_TRACE_FSESSION", "} tracing_multi;")
	if inc == "" {
		inc, header, _ = uapiWith("BPF_TRACE_FSESSION")
	}
	if inc == "" {
		t.Skipf("no linux/bpf.h with BPF_TRACE_FSESSION in %v (set PROBECONF_UAPI_INCLUDE)", tried)
	}
	multi := strings.Contains(header, "} tracing_multi;")
	t.Logf("uapi header: %s/linux/bpf.h (tracing_multi: %t)", inc, multi)
	src := `#include <stdio.h>
#include <stddef.h>
#include <linux/bpf.h>
#define LC(f) printf("%s %zu\n", #f, offsetof(union bpf_attr, link_create.f))
#define PL(f) printf("%s %zu\n", #f, offsetof(union bpf_attr, f))
int main(void) {
	LC(prog_fd); LC(target_fd); LC(attach_type); LC(flags);
	LC(tracing.target_btf_id); LC(tracing.cookie);
	printf("sizeof(tracing part) %zu\n", offsetof(union bpf_attr, link_create.tracing.cookie) + 8);
	PL(prog_type); PL(insn_cnt); PL(insns); PL(license); PL(log_level); PL(log_size); PL(log_buf);
	PL(kern_version); PL(prog_flags); PL(prog_name); PL(prog_ifindex); PL(expected_attach_type);
	PL(prog_btf_fd); PL(func_info_rec_size); PL(func_info); PL(func_info_cnt); PL(line_info_rec_size);
	PL(line_info); PL(line_info_cnt); PL(attach_btf_id); PL(attach_btf_obj_fd); PL(core_relo_cnt);
	PL(fd_array); PL(core_relos); PL(core_relo_rec_size); PL(log_true_size);
	printf("sizeof(prog_load part) %zu\n", offsetof(union bpf_attr, log_true_size) + 4);
	printf("BPF_PROG_LOAD %d\nBPF_PROG_TYPE_TRACING %d\nBPF_TRACE_FSESSION %d\n",
		BPF_PROG_LOAD, BPF_PROG_TYPE_TRACING, BPF_TRACE_FSESSION);
#ifdef WITH_MULTI
	LC(tracing_multi.ids); LC(tracing_multi.cookies); LC(tracing_multi.cnt);
	printf("sizeof(tracing_multi part) %zu\n", (offsetof(union bpf_attr, link_create.tracing_multi.cnt) + 4 + 7) / 8 * 8);
	printf("BPF_TRACE_FENTRY_MULTI %d\nBPF_TRACE_FEXIT_MULTI %d\nBPF_TRACE_FSESSION_MULTI %d\n",
		BPF_TRACE_FENTRY_MULTI, BPF_TRACE_FEXIT_MULTI, BPF_TRACE_FSESSION_MULTI);
#endif
	return 0;
}
`
	args := []string{"-I" + inc}
	if multi {
		args = append(args, "-DWITH_MULTI")
	}
	c := cValues(t, gcc, "tracing_layout", src, args...)
	check := func(what string, got, want map[string]uintptr) {
		for field := range want {
			if got[field] != c[field] {
				t.Errorf("%s: %s: Go %d, C %d", what, field, got[field], c[field])
			}
		}
	}
	check("link_create.tracing", goLinkCreateTracing(), wantLinkCreateTracing)
	check("prog_load", goProgLoad(), wantProgLoad)
	consts := map[string]uintptr{"BPF_PROG_LOAD": bpfProgLoad, "BPF_PROG_TYPE_TRACING": progTypeTracing, "BPF_TRACE_FSESSION": attachTraceFSession}
	if multi {
		check("link_create.tracing_multi", goLinkCreateTracingMulti(), wantLinkCreateTracingMulti)
		consts["BPF_TRACE_FENTRY_MULTI"] = attachTraceFEntryMulti
		consts["BPF_TRACE_FEXIT_MULTI"] = attachTraceFExitMulti
		consts["BPF_TRACE_FSESSION_MULTI"] = attachTraceFSessionMulti
	} else {
		t.Log("link_create.tracing_multi not checked against C: this header has no tracing_multi (the Go table is Linux 7.3's BTF)")
	}
	for name, v := range consts {
		if c[name] != v {
			t.Errorf("%s: Go %d, uapi %d", name, v, c[name])
		}
	}
}

// kernelLike is a BTF spec shaped like a kernel's: enum bpf_attach_type with
// the given enumerators, and FUNCs.
func kernelLike(t *testing.T, enumerators []string, funcs ...string) *btf.Spec {
	t.Helper()
	enum := &btf.Enum{Name: enumAttachType, Size: 4}
	for i, name := range enumerators {
		enum.Values = append(enum.Values, btf.EnumValue{Name: name, Value: uint64(i)})
	}
	types := []btf.Type{enum}
	for _, f := range funcs {
		types = append(types, &btf.Func{Name: f, Linkage: btf.GlobalFunc, Type: &btf.FuncProto{Return: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}}})
	}
	return syntheticSpec(t, types...)
}

func TestHaveAttachType(t *testing.T) {
	k618 := []string{"BPF_TRACE_FENTRY", "BPF_TRACE_KPROBE_SESSION", "BPF_TRACE_UPROBE_SESSION"}
	k70 := append(k618[:3:3], "BPF_TRACE_FSESSION")
	k73 := append(k70[:4:4], "BPF_TRACE_FENTRY_MULTI", "BPF_TRACE_FEXIT_MULTI", "BPF_TRACE_FSESSION_MULTI")
	for _, tc := range []struct {
		name                string
		enumerators         []string
		fsession, multi     bool
		fsessionMsg, multMs string
	}{
		{"6.18", k618, false, false, "fsession programs (BPF_TRACE_FSESSION) not supported (requires Linux >= 7.0): the kernel's enum bpf_attach_type has no BPF_TRACE_FSESSION",
			"tracing multi links (BPF_TRACE_FENTRY_MULTI/FEXIT_MULTI/FSESSION_MULTI) not supported: the kernel's enum bpf_attach_type has no BPF_TRACE_FENTRY_MULTI (Linux 7.3 has it)"},
		{"7.0", k70, true, false, "", "has no BPF_TRACE_FENTRY_MULTI"},
		{"7.3", k73, true, true, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kernelLike(t, tc.enumerators)
			load := func() (*btf.Spec, error) { return spec, nil }
			for _, c := range []struct {
				err  error
				have bool
				msg  string
			}{
				{haveAttachType(load, enumFSession, fsessionFeature, fsessionMinKernel), tc.fsession, tc.fsessionMsg},
				{haveAttachType(load, enumFEntryMulti, tracingMultiFeature, ""), tc.multi, tc.multMs},
			} {
				if (c.err == nil) != c.have || (c.err != nil && !errors.Is(c.err, ErrNotSupported)) {
					t.Errorf("have %t: %v", c.have, c.err)
				}
				if c.err != nil && !strings.Contains(c.err.Error(), c.msg) {
					t.Errorf("%q does not say %q", c.err, c.msg)
				}
			}
		})
	}
	noBTF := func() (*btf.Spec, error) { return nil, fmt.Errorf("no kernel BTF: %w", os.ErrNotExist) }
	if err := haveAttachType(noBTF, enumFSession, fsessionFeature, fsessionMinKernel); !errors.Is(err, ErrNotSupported) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("without kernel BTF: %v", err)
	}
}

func TestKernelFuncID(t *testing.T) {
	spec := kernelLike(t, nil, "do_sys_openat2", "__x64_sys_close")
	id, err := kernelFuncID(spec, "__x64_sys_close")
	if err != nil {
		t.Fatal(err)
	}
	var fn *btf.Func
	if typ, err := spec.TypeByID(id); err != nil || typ.TypeName() != "__x64_sys_close" {
		t.Errorf("id %d is %v (%v), want FUNC __x64_sys_close", id, typ, err)
	} else if fn, _ = typ.(*btf.Func); fn == nil {
		t.Errorf("id %d is a %T, not a FUNC", id, typ)
	}
	ids, err := kernelFuncIDs(spec, []string{"do_sys_openat2", "__x64_sys_close"})
	if err != nil || len(ids) != 2 || ids[1] != uint32(id) || ids[0] == ids[1] {
		t.Errorf("kernelFuncIDs = %v, %v", ids, err)
	}
	for _, tc := range []struct {
		name string
		is   error
		msg  string
	}{
		{"__x64_sys_getppid", os.ErrNotExist, `kernel BTF has no function "__x64_sys_getppid"`},
		{"bpf_attach_type", os.ErrNotExist, "has no function"}, // an enum, not a FUNC
		{"bpf_testmod:bpf_testmod_fentry_test1", os.ErrInvalid, "module:function targets are not supported"},
		{"", os.ErrInvalid, "no kernel function named"},
	} {
		_, err := kernelFuncID(spec, tc.name)
		if !errors.Is(err, tc.is) || !strings.Contains(fmt.Sprint(err), tc.msg) {
			t.Errorf("%q: %v, want %v and %q", tc.name, err, tc.is, tc.msg)
		}
		if tc.is == os.ErrNotExist && kernelErrno(err) != unix.ENOENT {
			t.Errorf("%q: errno %v, want ENOENT (as the libbpf harness)", tc.name, kernelErrno(err))
		}
	}
}

func TestPrepareTracingMultiSpec(t *testing.T) {
	for _, tc := range []struct {
		section   string
		want      ebpf.AttachType
		sleepable bool
		changed   bool
	}{
		{"fentry.multi", AttachTraceFEntryMulti, false, true},
		{"fexit.multi/bpf_fentry_test*", AttachTraceFExitMulti, false, true},
		{"fsession.multi", AttachTraceFSessionMulti, false, true},
		{"?fentry.multi.s/bpf_fentry_test1", AttachTraceFEntryMulti, true, true},
		{"fentry", 0, false, false},
		{"fsession", 0, false, false},
		{"fentry.multix", 0, false, false},
		{"kprobe.multi", 0, false, false},
	} {
		ps := &ebpf.ProgramSpec{Name: "p", SectionName: tc.section, AttachTo: "x"}
		changed := PrepareTracingMultiSpec(ps)
		if changed != tc.changed {
			t.Errorf("%s: changed %t, want %t", tc.section, changed, tc.changed)
		}
		if !tc.changed {
			if ps.Type != ebpf.UnspecifiedProgram || ps.AttachTo != "x" {
				t.Errorf("%s: changed %+v", tc.section, ps)
			}
			continue
		}
		if ps.Type != ebpf.Tracing || ps.AttachType != tc.want || ps.AttachTo != "" || (ps.Flags&unix.BPF_F_SLEEPABLE != 0) != tc.sleepable {
			t.Errorf("%s: %s/%s AttachTo %q flags %#x", tc.section, ps.Type, ps.AttachType, ps.AttachTo, ps.Flags)
		}
		if PrepareTracingMultiSpec(ps) {
			t.Errorf("%s: changed again", tc.section)
		}
	}
}

func TestIsFsessionSpec(t *testing.T) {
	for _, tc := range []struct {
		ps   ebpf.ProgramSpec
		want bool
	}{
		{ebpf.ProgramSpec{SectionName: "fsession", Type: ebpf.Tracing, AttachType: AttachTraceFSession}, true}, // v0.22.0
		{ebpf.ProgramSpec{SectionName: "fsession"}, true},                                                      // before v0.22.0
		{ebpf.ProgramSpec{SectionName: "fsession/do_sys_openat2"}, true},
		{ebpf.ProgramSpec{SectionName: "fsession.s/do_sys_openat2"}, true},
		{ebpf.ProgramSpec{SectionName: "fsession.multi"}, false},
		{ebpf.ProgramSpec{SectionName: "fentry", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry}, false},
		{ebpf.ProgramSpec{SectionName: "fsession", Type: ebpf.Kprobe}, false},
	} {
		if got := isFsessionSpec(&tc.ps); got != tc.want {
			t.Errorf("%q %s/%s: %t, want %t", tc.ps.SectionName, tc.ps.Type, tc.ps.AttachType, got, tc.want)
		}
	}
}

// kfuncCall is a call of the kfunc name as cilium's ELF reader leaves it.
func kfuncCall(name string) asm.Instruction {
	return asm.Instruction{OpCode: asm.OpCode(asm.JumpClass).SetJumpOp(asm.Call), Src: asm.PseudoKfuncCall, Constant: -1}.WithReference(name)
}

func TestLinkInstructions(t *testing.T) {
	kernel := kernelLike(t, nil, "do_sys_openat2", "bpf_session_cookie", "bpf_session_is_return")
	wantID, err := kernelFuncID(kernel, "bpf_session_cookie")
	if err != nil {
		t.Fatal(err)
	}
	spec := &ebpf.ProgramSpec{Name: "p", Instructions: asm.Instructions{
		kfuncCall("bpf_session_cookie"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}}
	insns, err := linkInstructions(spec, nil, kernel)
	if err != nil {
		t.Fatal(err)
	}
	if insns[0].Constant != int64(wantID) || insns[0].Offset != 0 || !insns[0].IsKfuncCall() {
		t.Errorf("kfunc call linked as %v (constant %d), want BTF id %d", insns[0], insns[0].Constant, wantID)
	}
	if spec.Instructions[0].Constant != -1 {
		t.Errorf("the spec's instructions were changed: %v", spec.Instructions[0])
	}

	for _, tc := range []struct {
		name string
		ins  asm.Instruction
		is   error
		msg  string
	}{
		{"kfunc the kernel lacks", kfuncCall("bpf_no_such_kfunc"), ErrNotSupported, `kfunc "bpf_no_such_kfunc": not in vmlinux BTF`},
		{"map not given", asm.LoadMapPtr(asm.R1, 0).WithReference("events"), asm.ErrUnsatisfiedMapReference, `map "events" is not among the maps given`},
		{".kconfig load", asm.LoadMapValue(asm.R1, 0, 8), nil, "without a map name (.kconfig)"},
		{".ksyms load", asm.LoadImm(asm.R1, 0, asm.DWord).WithReference("bpf_prog_active"), nil, `a load of "bpf_prog_active" (.ksyms)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &ebpf.ProgramSpec{Name: "p", Instructions: asm.Instructions{tc.ins, asm.Mov.Imm(asm.R0, 0), asm.Return()}}
			_, err := linkInstructions(spec, map[string]*ebpf.Map{}, kernel)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("%v, want %q (%v)", err, tc.msg, tc.is)
			}
		})
	}
	if _, err := linkInstructions(&ebpf.ProgramSpec{Name: "empty"}, nil, kernel); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("no instructions: %v", err)
	}
}

func TestVerifierError(t *testing.T) {
	log := []byte("func#0 @0\n0: R1=ctx() R10=fp0\n0: (b7) r0 = 1\n1: (95) exit\nAt program exit the register R0 has smin=1 smax=1 should have been in [0, 0]\nprocessed 2 insns (limit 1000000)\n\x00garbage")
	err := error(newVerifierError(unix.EINVAL, log))
	want := "load program: invalid argument: At program exit the register R0 has smin=1 smax=1 should have been in [0, 0] (5 line(s) omitted)"
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
	}
	var verr *ebpf.VerifierError
	if !errors.As(err, &verr) || len(verr.Log) != 6 || verr.Log[0] != "func#0 @0" {
		t.Fatalf("errors.As *ebpf.VerifierError: %v (%+v)", verr != nil, verr)
	}
	if kernelErrno(err) != unix.EINVAL {
		t.Errorf("errno %v, want EINVAL", kernelErrno(err))
	}
	full := fmt.Sprintf("%+v", err)
	if !strings.HasPrefix(full, "load program: invalid argument:\n\tfunc#0 @0\n") || !strings.Contains(full, "\n\tprocessed 2 insns") {
		t.Errorf("%%+v = %q", full)
	}
	// Without the log, the errno alone (kernelFeature.error's input, e.g.).
	if plain := plainKernelError(fmt.Errorf("fsession p: %w", err)); errors.As(plain, &verr) || kernelErrno(plain) != unix.EINVAL ||
		plain.Error() != "fsession p: "+want {
		t.Errorf("plainKernelError: %q, VerifierError %t", plain, errors.As(plain, &verr))
	}
}

func TestKernelFeatureError(t *testing.T) {
	lacks := func() error { return &unsupportedError{feature: "f"} }
	has := func() error { return nil }
	refusal := fmt.Errorf("load: %w", newVerifierError(unix.EINVAL, []byte("Tracing programs must provide btf_id\n")))
	for _, tc := range []struct {
		name        string
		have        func() error
		err         error
		unsupported bool
	}{
		{"EINVAL, kernel lacks it", lacks, refusal, true},
		{"EINVAL, kernel has it: the program's fault", has, refusal, false},
		{"EOPNOTSUPP", has, fmt.Errorf("link: %w", unix.EOPNOTSUPP), true},
		{"ENOTSUPP", has, fmt.Errorf("link: %w", enotsupp), true},
		{"ENOENT", lacks, fmt.Errorf("link: %w", unix.ENOENT), false},
		{"no errno", lacks, errors.New("bad"), false},
	} {
		f := kernelFeature{name: "feature X", minKernel: "7.0", have: tc.have, missing: "the kernel lacks X", opNotSupp: "no X here"}
		got := f.error(tc.err)
		if errors.Is(got, ErrNotSupported) != tc.unsupported {
			t.Errorf("%s: %v: unsupported %t, want %t", tc.name, got, !tc.unsupported, tc.unsupported)
		}
		if !tc.unsupported && got != tc.err {
			t.Errorf("%s: error changed: %v", tc.name, got)
		}
		if tc.unsupported {
			var verr *ebpf.VerifierError
			if errors.As(got, &verr) || kernelErrno(got) != kernelErrno(tc.err) || !strings.HasPrefix(got.Error(), "feature X not supported (requires Linux >= 7.0): ") {
				t.Errorf("%s: %q: keeps the VerifierError %t, errno %v", tc.name, got, errors.As(got, &verr), kernelErrno(got))
			}
		}
	}
	if (kernelFeature{have: lacks}).error(nil) != nil {
		t.Error("nil error changed")
	}
}

func TestObjName(t *testing.T) {
	for in, want := range map[string]string{
		"pc_fsession":             "pc_fsession",
		"pc_fsession_multi_large": "pc_fsession_mul",
		"a-b:c.d":                 "abc.d",
	} {
		got := objName(in)
		if s := strings.TrimRight(string(got[:]), "\x00"); s != want || got[15] != 0 {
			t.Errorf("objName(%q) = %q, want %q", in, s, want)
		}
	}
}
