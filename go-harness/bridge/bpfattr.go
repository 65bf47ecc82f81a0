package bridge

import (
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// AttachTraceUprobeSession is the expected attach type of a uprobe.session
// program (enum bpf_attach_type BPF_TRACE_UPROBE_SESSION, Linux 6.13). cilium
// names it ebpf.AttachTraceUprobeSession from v0.21.0 on; v0.17.3 and v0.20.0
// have no name for it.
const AttachTraceUprobeSession = ebpf.AttachType(attachTraceUprobeSession)

// Kernel uapi constants the bridges need. cilium keeps its own copies in an
// internal package, so they are restated here from include/uapi/linux/bpf.h.
const (
	bpfProgLoad              = 5  // enum bpf_cmd: BPF_PROG_LOAD
	bpfLinkCreate            = 28 // enum bpf_cmd: BPF_LINK_CREATE
	progTypeTracing          = 26 // enum bpf_prog_type: BPF_PROG_TYPE_TRACING
	attachTraceUprobeMulti   = 48 // enum bpf_attach_type: BPF_TRACE_UPROBE_MULTI
	attachTraceUprobeSession = 57 // enum bpf_attach_type: BPF_TRACE_UPROBE_SESSION
	attachTraceFSession      = 58 // enum bpf_attach_type: BPF_TRACE_FSESSION (Linux 7.0)
	attachTraceFEntryMulti   = 59 // enum bpf_attach_type: BPF_TRACE_FENTRY_MULTI (in 7.3's BTF)
	attachTraceFExitMulti    = 60 // enum bpf_attach_type: BPF_TRACE_FEXIT_MULTI
	attachTraceFSessionMulti = 61 // enum bpf_attach_type: BPF_TRACE_FSESSION_MULTI
	bpfFUprobeMultiReturn    = 1  // link_create.uprobe_multi.flags: BPF_F_UPROBE_MULTI_RETURN
)

// bpfPointer is an __aligned_u64 that carries a Go pointer. It is typed as
// unsafe.Pointer rather than uint64 so that the garbage collector and escape
// analysis see the reference: the buffer stays alive and on the heap while the
// attr points at it (cilium's sys.Pointer does the same on 64-bit arches).
//
// No padding field for 32-bit arches: Go pads a struct whose last field has
// size zero, which made an earlier "[8-ptrsize]byte" tail turn this into 16
// bytes on amd64. 32-bit arches are refused at compile time instead.
type bpfPointer struct {
	ptr unsafe.Pointer
}

// The uprobe_multi bridges need 64-bit pointers (the kernel refuses
// uprobe_multi on 32-bit arches anyway): this fails to compile elsewhere.
var _ [unsafe.Sizeof(bpfPointer{}) - 8]byte

func pointerTo[T any](s []T) bpfPointer {
	if len(s) == 0 {
		return bpfPointer{}
	}
	return bpfPointer{ptr: unsafe.Pointer(&s[0])}
}

// linkCreateUprobeMultiAttr is the prefix of union bpf_attr used by
// BPF_LINK_CREATE for uprobe_multi and uprobe_session links:
//
//	struct { /* BPF_LINK_CREATE */
//		__u32 prog_fd; __u32 target_fd; __u32 attach_type; __u32 flags;
//		union { ... struct {
//			__aligned_u64 path; __aligned_u64 offsets;
//			__aligned_u64 ref_ctr_offsets; __aligned_u64 cookies;
//			__u32 cnt; __u32 flags; __u32 pid;
//		} uprobe_multi; ... };
//	} link_create;
//
// The layout is checked by TestLinkCreateUprobeMultiAttrLayout, against the
// uapi header when one with uprobe_multi is available.
type linkCreateUprobeMultiAttr struct {
	progFD        uint32
	targetFD      uint32
	attachType    uint32
	flags         uint32
	path          bpfPointer
	offsets       bpfPointer
	refCtrOffsets bpfPointer
	cookies       bpfPointer
	cnt           uint32
	uprobeFlags   uint32
	pid           uint32
	_             uint32 // tail padding to the struct's 8-byte alignment, as in C
}

// linkCreateTracingAttr is the prefix of union bpf_attr used by
// BPF_LINK_CREATE for a tracing link (fentry, fexit, fmod_ret, fsession):
//
//	struct { /* BPF_LINK_CREATE */
//		__u32 prog_fd; __u32 target_fd; __u32 attach_type; __u32 flags;
//		union { ... struct {
//			__u32 target_btf_id; /* 0: the program's own target */
//			__u64 cookie;
//		} tracing; ... };
//	} link_create;
type linkCreateTracingAttr struct {
	progFD      uint32
	targetFD    uint32
	attachType  uint32
	flags       uint32
	targetBTFID uint32
	_           uint32 // padding: cookie is 8-byte aligned
	cookie      uint64
}

// linkCreateTracingMultiAttr is the prefix of union bpf_attr used by
// BPF_LINK_CREATE for a tracing multi link (attach types 59, 60, 61; the
// layout of Linux 7.3's BTF):
//
//	struct { /* BPF_LINK_CREATE */
//		__u32 prog_fd; __u32 target_fd; __u32 attach_type; __u32 flags;
//		union { ... struct {
//			__aligned_u64 ids;     /* __u32[cnt]: BTF FUNC ids */
//			__aligned_u64 cookies; /* __u64[cnt], or 0 */
//			__u32 cnt;
//		} tracing_multi; ... };
//	} link_create;
type linkCreateTracingMultiAttr struct {
	progFD     uint32
	targetFD   uint32
	attachType uint32
	flags      uint32
	ids        bpfPointer
	cookies    bpfPointer
	cnt        uint32
	_          uint32 // tail padding to the struct's 8-byte alignment, as in C
}

// progLoadAttr is the prefix of union bpf_attr used by BPF_PROG_LOAD, up to
// log_true_size (Linux 6.4; an older kernel accepts the larger attr because
// the field is zero on the way in):
//
//	struct { /* BPF_PROG_LOAD */
//		__u32 prog_type; __u32 insn_cnt; __aligned_u64 insns; __aligned_u64 license;
//		__u32 log_level; __u32 log_size; __aligned_u64 log_buf; __u32 kern_version;
//		__u32 prog_flags; char prog_name[16]; __u32 prog_ifindex;
//		__u32 expected_attach_type; __u32 prog_btf_fd; __u32 func_info_rec_size;
//		__aligned_u64 func_info; __u32 func_info_cnt; __u32 line_info_rec_size;
//		__aligned_u64 line_info; __u32 line_info_cnt; __u32 attach_btf_id;
//		union { __u32 attach_prog_fd; __u32 attach_btf_obj_fd; };
//		__u32 core_relo_cnt; __aligned_u64 fd_array; __aligned_u64 core_relos;
//		__u32 core_relo_rec_size; __u32 log_true_size;
//	};
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              bpfPointer
	license            bpfPointer
	logLevel           uint32
	logSize            uint32
	logBuf             bpfPointer
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
	progBTFFD          uint32
	funcInfoRecSize    uint32
	funcInfo           bpfPointer
	funcInfoCnt        uint32
	lineInfoRecSize    uint32
	lineInfo           bpfPointer
	lineInfoCnt        uint32
	attachBTFID        uint32
	attachBTFObjFD     uint32
	coreReloCnt        uint32
	fdArray            bpfPointer
	coreRelos          bpfPointer
	coreReloRecSize    uint32
	logTrueSize        uint32
}

// bpfAttr is every bpf_attr prefix the bridges pass to the kernel.
type bpfAttr interface {
	linkCreateUprobeMultiAttr | linkCreateTracingAttr | linkCreateTracingMultiAttr | progLoadAttr
}

// bpfCall issues bpf(cmd, attr, sizeof(*attr)), retrying on EINTR (and, for
// BPF_PROG_LOAD, on EAGAIN a few times: the verifier answers EAGAIN when a
// signal interrupted it, and cilium retries too), and returns the new fd.
func bpfCall[T bpfAttr](cmd uintptr, attr *T) (int, error) {
	for again := 0; ; {
		r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
		runtime.KeepAlive(attr)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN && cmd == bpfProgLoad && again < 5:
			again++
			continue
		case errno != 0:
			return -1, errno
		}
		return int(r), nil
	}
}
