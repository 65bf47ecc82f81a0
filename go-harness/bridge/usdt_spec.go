package bridge

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// The binary layout of struct __bpf_usdt_spec in libbpf 1.7's usdt.bpf.h (and
// of struct usdt_spec in usdt.c, which libbpf writes into the spec map), on a
// little-endian 64-bit target:
//
//	struct __bpf_usdt_arg_spec {            // 24 bytes
//		__u64 val_off;                      // @0
//		enum __bpf_usdt_arg_type arg_type: 8; // bits 64-71  (byte 8)
//		__u16 idx_reg_off: 12;              // bits 80-91  (a new __u16 unit: 72+12 would straddle bit 80)
//		__u16 scale_bitshift: 4;            // bits 92-95
//		__u8 __reserved: 8;                 // bits 96-103 (byte 12)
//		short reg_off;                      // @14
//		bool arg_signed;                    // @16
//		char arg_bitshift;                  // @17
//	};
//	struct __bpf_usdt_spec {                // 304 bytes
//		struct __bpf_usdt_arg_spec args[12]; // @0
//		__u64 usdt_cookie;                  // @288
//		short arg_cnt;                      // @296
//	};
//
// usdtLayout is that layout as bit offsets and bitfield sizes. The encoder
// places every field by it, and checkUSDTSpecLayout compares it with the BTF
// of the object being attached (the ABI its program reads), so an object built
// with another usdt.bpf.h is refused instead of fed a wrong layout.
var usdtLayout = struct {
	argSize, specSize uint32
	arg               []usdtField // struct __bpf_usdt_arg_spec
	spec              []usdtField // struct __bpf_usdt_spec
}{
	argSize:  24,
	specSize: 304,
	arg: []usdtField{
		{"val_off", 0, 0},
		{"arg_type", 64, 8},
		{"idx_reg_off", 80, 12},
		{"scale_bitshift", 92, 4},
		{"__reserved", 96, 8},
		{"reg_off", 112, 0},
		{"arg_signed", 128, 0},
		{"arg_bitshift", 136, 0},
	},
	spec: []usdtField{
		{"args", 0, 0},
		{"usdt_cookie", 2304, 0},
		{"arg_cnt", 2368, 0},
	},
}

// usdtField is one member: bit offset, and bitfield size (0: not a bitfield).
type usdtField struct {
	name    string
	bitOff  uint32
	bitSize uint8
}

// Byte offsets derived from usdtLayout (checked by TestUSDTLayoutConstants).
const (
	usdtArgSpecSize     = 24
	usdtSpecSize        = 304
	usdtOffValOff       = 0
	usdtOffArgType      = 8  // arg_type: the whole byte
	usdtOffIdxScale     = 10 // __u16 unit: idx_reg_off bits 0-11, scale_bitshift bits 12-15
	usdtOffRegOff       = 14
	usdtOffArgSigned    = 16
	usdtOffArgBitshift  = 17
	usdtOffCookie       = 288
	usdtOffArgCnt       = 296
	usdtSpecStructName  = "__bpf_usdt_spec"
	usdtArgStructName   = "__bpf_usdt_arg_spec"
	usdtSpecsMapName    = "__bpf_usdt_specs"
	usdtIPToSpecMapName = "__bpf_usdt_ip_to_spec_id"
)

// MarshalBinary lays the spec out as struct __bpf_usdt_spec (libbpf 1.7, 304
// bytes, little endian; __reserved and padding are zero).
func (s *usdtSpec) MarshalBinary() ([]byte, error) {
	b := make([]byte, usdtSpecSize)
	le := binary.LittleEndian
	for i, a := range s.Args {
		o := i * usdtArgSpecSize
		if a.IdxRegOff > 0xfff || a.ScaleBitshift > 0xf {
			return nil, fmt.Errorf("usdt spec arg %d: idx_reg_off %d / scale_bitshift %d overflow their bitfields", i, a.IdxRegOff, a.ScaleBitshift)
		}
		le.PutUint64(b[o+usdtOffValOff:], a.ValOff)
		b[o+usdtOffArgType] = a.ArgType
		le.PutUint16(b[o+usdtOffIdxScale:], a.IdxRegOff|uint16(a.ScaleBitshift)<<12)
		le.PutUint16(b[o+usdtOffRegOff:], uint16(a.RegOff))
		if a.ArgSigned {
			b[o+usdtOffArgSigned] = 1
		}
		b[o+usdtOffArgBitshift] = byte(a.ArgBitshift)
	}
	le.PutUint64(b[usdtOffCookie:], s.Cookie)
	le.PutUint16(b[usdtOffArgCnt:], uint16(s.ArgCnt))
	return b, nil
}

// checkUSDTSpecLayout checks that types (an object's BTF) declares struct
// __bpf_usdt_spec and struct __bpf_usdt_arg_spec exactly as libbpf 1.7 does,
// the layout MarshalBinary writes. libbpf itself writes its compiled-in
// layout without looking; the harness refuses a mismatch (an object built
// against another usdt.bpf.h) rather than hand its program garbage.
func checkUSDTSpecLayout(types *btf.Spec) error {
	if types == nil {
		return invalidf("usdt: the object has no BTF to check struct %s against", usdtSpecStructName)
	}
	var spec, arg *btf.Struct
	if err := types.TypeByName(usdtSpecStructName, &spec); err != nil {
		return fmt.Errorf("usdt: the object's BTF has no struct %s (built without usdt.bpf.h?): %w", usdtSpecStructName, err)
	}
	if err := types.TypeByName(usdtArgStructName, &arg); err != nil {
		return fmt.Errorf("usdt: the object's BTF has no struct %s: %w", usdtArgStructName, err)
	}
	if err := compareStruct(arg, usdtLayout.argSize, usdtLayout.arg); err != nil {
		return err
	}
	if err := compareStruct(spec, usdtLayout.specSize, usdtLayout.spec); err != nil {
		return err
	}
	args, ok := btf.UnderlyingType(spec.Members[0].Type).(*btf.Array)
	if !ok || args.Nelems != usdtMaxArgs {
		return invalidf("usdt: struct %s.args is %v, want an array of %d struct %s", usdtSpecStructName, spec.Members[0].Type, usdtMaxArgs, usdtArgStructName)
	}
	if elem, ok := btf.UnderlyingType(args.Type).(*btf.Struct); !ok || elem.Name != usdtArgStructName {
		return invalidf("usdt: struct %s.args holds %v, want struct %s", usdtSpecStructName, args.Type, usdtArgStructName)
	}
	return nil
}

func compareStruct(s *btf.Struct, size uint32, want []usdtField) error {
	mismatch := func(format string, a ...any) error {
		return invalidf("usdt: the object's struct %s differs from libbpf 1.7's layout (the one the harness writes): %s",
			s.Name, fmt.Sprintf(format, a...))
	}
	if s.Size != size {
		return mismatch("size %d, want %d", s.Size, size)
	}
	if len(s.Members) != len(want) {
		return mismatch("%d members, want %d", len(s.Members), len(want))
	}
	for i, m := range s.Members {
		w := want[i]
		if m.Name != w.name || uint32(m.Offset) != w.bitOff || uint8(m.BitfieldSize) != w.bitSize {
			return mismatch("member %d is %s at bit %d (bitfield %d), want %s at bit %d (bitfield %d)",
				i, m.Name, m.Offset, m.BitfieldSize, w.name, w.bitOff, w.bitSize)
		}
	}
	return nil
}
