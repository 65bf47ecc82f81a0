package bridge

import (
	"unsafe"

	"github.com/cilium/ebpf"
)

// AttachTraceUprobeSession is the expected attach type of a uprobe.session
// program (enum bpf_attach_type BPF_TRACE_UPROBE_SESSION, Linux 6.13). cilium
// names it ebpf.AttachTraceUprobeSession from v0.21.0 on; v0.17.3 and v0.20.0
// have no name for it.
const AttachTraceUprobeSession = ebpf.AttachType(attachTraceUprobeSession)

// Kernel uapi constants the bridges need. cilium keeps its own copies in an
// internal package, so they are restated here from include/uapi/linux/bpf.h.
const (
	bpfLinkCreate            = 28 // enum bpf_cmd: BPF_LINK_CREATE
	attachTraceUprobeMulti   = 48 // enum bpf_attach_type: BPF_TRACE_UPROBE_MULTI
	attachTraceUprobeSession = 57 // enum bpf_attach_type: BPF_TRACE_UPROBE_SESSION
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
