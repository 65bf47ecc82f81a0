package bridge

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"probeconf/bridge/bridgetest"
)

// sampleSpec has a distinct value in every field of every argument, so a
// field written at the wrong place shows.
func sampleSpec() usdtSpec {
	s := usdtSpec{Cookie: 0x1122334455667788, ArgCnt: usdtMaxArgs}
	for i := range s.Args {
		s.Args[i] = usdtArgSpec{
			ValOff:        0xa0b0c0d0e0f00000 + uint64(i),
			ArgType:       uint8(i % 4),
			IdxRegOff:     uint16(0x800 + i*8), // 12 bits
			ScaleBitshift: uint8(i%3 + 1),      // 4 bits
			RegOff:        int16(-100 - i),
			ArgSigned:     i%2 == 0,
			ArgBitshift:   int8(i * 5),
		}
	}
	return s
}

// fieldValues are the values of sampleSpec's fields by BTF member name, as
// unsigned bit patterns of the member's width.
func fieldValues(a usdtArgSpec) map[string]uint64 {
	signed := uint64(0)
	if a.ArgSigned {
		signed = 1
	}
	return map[string]uint64{
		"val_off": a.ValOff, "arg_type": uint64(a.ArgType), "idx_reg_off": uint64(a.IdxRegOff),
		"scale_bitshift": uint64(a.ScaleBitshift), "__reserved": 0, "reg_off": uint64(uint16(a.RegOff)),
		"arg_signed": signed, "arg_bitshift": uint64(uint8(a.ArgBitshift)),
	}
}

// bits reads n bits at bit offset off of a little-endian byte string.
func bits(b []byte, off, n uint32) uint64 {
	var v uint64
	for i := uint32(0); i < n; i++ {
		bit := off + i
		v |= uint64(b[bit/8]>>(bit%8)&1) << i
	}
	return v
}

func TestUSDTLayoutConstants(t *testing.T) {
	byName := map[string]usdtField{}
	for _, f := range append(append([]usdtField{}, usdtLayout.arg...), usdtLayout.spec...) {
		byName[f.name] = f
	}
	for name, off := range map[string]uint32{
		"val_off": usdtOffValOff, "arg_type": usdtOffArgType, "idx_reg_off": usdtOffIdxScale,
		"reg_off": usdtOffRegOff, "arg_signed": usdtOffArgSigned, "arg_bitshift": usdtOffArgBitshift,
		"usdt_cookie": usdtOffCookie, "arg_cnt": usdtOffArgCnt,
	} {
		if byName[name].bitOff != off*8 {
			t.Errorf("%s: byte constant %d, layout bit %d", name, off, byName[name].bitOff)
		}
	}
	if byName["scale_bitshift"].bitOff != usdtOffIdxScale*8+12 {
		t.Errorf("scale_bitshift must follow the 12 bits of idx_reg_off in the __u16 at %d", usdtOffIdxScale)
	}
	if usdtLayout.argSize != usdtArgSpecSize || usdtLayout.specSize != usdtSpecSize ||
		usdtSpecSize != usdtMaxArgs*usdtArgSpecSize+16 {
		t.Errorf("sizes: arg %d/%d, spec %d/%d", usdtLayout.argSize, usdtArgSpecSize, usdtLayout.specSize, usdtSpecSize)
	}
}

// TestUSDTSpecEncodingMatchesObjectBTF checks the encoder against the ABI the
// program reads: the object's BTF has libbpf 1.7's layout, and every field of
// an encoded spec reads back, at the BTF's bit offset and width, as written.
func TestUSDTSpecEncodingMatchesObjectBTF(t *testing.T) {
	object := bridgetest.USDTObjectFile(t)
	spec := parseOnly(t, object)
	if err := checkUSDTSpecLayout(spec.Types); err != nil {
		t.Fatal(err)
	}
	var specT, argT *btf.Struct
	if err := spec.Types.TypeByName(usdtSpecStructName, &specT); err != nil {
		t.Fatal(err)
	}
	if err := spec.Types.TypeByName(usdtArgStructName, &argT); err != nil {
		t.Fatal(err)
	}
	t.Logf("BTF: struct %s is %d bytes, struct %s %d bytes", usdtSpecStructName, specT.Size, usdtArgStructName, argT.Size)
	if m := spec.Maps[usdtSpecsMapName]; m == nil || m.ValueSize != specT.Size || m.Type != ebpf.Array {
		t.Errorf("map %s: %+v, want an array of %d-byte values", usdtSpecsMapName, m, specT.Size)
	}

	s := sampleSpec()
	raw, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != int(specT.Size) {
		t.Fatalf("encoded %d bytes, BTF says %d", len(raw), specT.Size)
	}
	width := func(m btf.Member) uint32 {
		if m.BitfieldSize != 0 {
			return uint32(m.BitfieldSize)
		}
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(size) * 8
	}
	for i, a := range s.Args {
		want := fieldValues(a)
		for _, m := range argT.Members {
			off := uint32(i)*argT.Size*8 + uint32(m.Offset)
			if got := bits(raw, off, width(m)); got != want[m.Name] {
				t.Errorf("args[%d].%s: reads %#x at bit %d, want %#x", i, m.Name, got, off, want[m.Name])
			}
		}
	}
	for _, m := range specT.Members[1:] {
		want := map[string]uint64{"usdt_cookie": s.Cookie, "arg_cnt": uint64(s.ArgCnt)}[m.Name]
		if got := bits(raw, uint32(m.Offset), width(m)); got != want {
			t.Errorf("%s: reads %#x, want %#x", m.Name, got, want)
		}
	}
}

// TestCheckUSDTSpecLayoutRefusesOtherLayouts: libbpf before 1.7 had a 16-byte
// struct __bpf_usdt_arg_spec (enum arg_type; short reg_off at 12); such an
// object would read garbage from libbpf 1.7's layout, so the bridge refuses it.
func TestCheckUSDTSpecLayoutRefusesOtherLayouts(t *testing.T) {
	u64 := &btf.Int{Name: "__u64", Size: 8}
	u16 := &btf.Int{Name: "__u16", Size: 2}
	u8 := &btf.Int{Name: "__u8", Size: 1}
	short := &btf.Int{Name: "short", Size: 2, Encoding: btf.Signed}
	boolT := &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}
	char := &btf.Int{Name: "char", Size: 1, Encoding: btf.Char}
	enum := &btf.Enum{Name: "__bpf_usdt_arg_type", Size: 4}
	build := func(arg *btf.Struct) *btf.Spec {
		spec := &btf.Struct{Name: usdtSpecStructName, Size: uint32(usdtMaxArgs)*arg.Size + 16, Members: []btf.Member{
			{Name: "args", Type: &btf.Array{Index: &btf.Int{Name: "int", Size: 4}, Type: arg, Nelems: usdtMaxArgs}},
			{Name: "usdt_cookie", Type: u64, Offset: btf.Bits(usdtMaxArgs * arg.Size * 8)},
			{Name: "arg_cnt", Type: short, Offset: btf.Bits((usdtMaxArgs*arg.Size + 8) * 8)},
		}}
		var b btf.Builder
		if _, err := b.Add(spec); err != nil {
			t.Fatal(err)
		}
		raw, err := b.Marshal(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		types, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		return types
	}
	v17 := &btf.Struct{Name: usdtArgStructName, Size: 24, Members: []btf.Member{
		{Name: "val_off", Type: u64},
		{Name: "arg_type", Type: enum, Offset: 64, BitfieldSize: 8},
		{Name: "idx_reg_off", Type: u16, Offset: 80, BitfieldSize: 12},
		{Name: "scale_bitshift", Type: u16, Offset: 92, BitfieldSize: 4},
		{Name: "__reserved", Type: u8, Offset: 96, BitfieldSize: 8},
		{Name: "reg_off", Type: short, Offset: 112},
		{Name: "arg_signed", Type: boolT, Offset: 128},
		{Name: "arg_bitshift", Type: char, Offset: 136},
	}}
	if err := checkUSDTSpecLayout(build(v17)); err != nil {
		t.Errorf("libbpf 1.7 layout refused: %v", err)
	}
	v16 := &btf.Struct{Name: usdtArgStructName, Size: 16, Members: []btf.Member{
		{Name: "val_off", Type: u64},
		{Name: "arg_type", Type: enum, Offset: 64},
		{Name: "reg_off", Type: short, Offset: 96},
		{Name: "arg_signed", Type: boolT, Offset: 112},
		{Name: "arg_bitshift", Type: char, Offset: 120},
	}}
	if err := checkUSDTSpecLayout(build(v16)); err == nil || !strings.Contains(err.Error(), "size 16, want 24") {
		t.Errorf("libbpf 1.6 layout: %v, want refused for its size", err)
	}
	if err := checkUSDTSpecLayout(nil); err == nil {
		t.Error("no BTF accepted")
	}
}

// TestUSDTSpecEncodingMatchesUsdtBpfH compiles the struct definitions of
// libbpf 1.7's usdt.bpf.h (cut out of the vendored header) with gcc, fills
// one with sampleSpec's values field by field and compares its bytes, size
// and offsets with the encoder's.
func TestUSDTSpecEncodingMatchesUsdtBpfH(t *testing.T) {
	bridgetest.RequireAMD64(t)
	gcc := bridgetest.RequireGCC(t)
	_, header := libbpfUSDTSource(t)
	s := sampleSpec()
	var fill strings.Builder
	for i, a := range s.Args {
		fmt.Fprintf(&fill, "\ts.args[%d].val_off = %#xULL; s.args[%d].arg_type = %d; s.args[%d].idx_reg_off = %d;\n",
			i, a.ValOff, i, a.ArgType, i, a.IdxRegOff)
		fmt.Fprintf(&fill, "\ts.args[%d].scale_bitshift = %d; s.args[%d].reg_off = %d; s.args[%d].arg_signed = %v; s.args[%d].arg_bitshift = %d;\n",
			i, a.ScaleBitshift, i, a.RegOff, i, a.ArgSigned, i, a.ArgBitshift)
	}
	fmt.Fprintf(&fill, "\ts.usdt_cookie = %#xULL; s.arg_cnt = %d;\n", s.Cookie, s.ArgCnt)
	src := strings.Join([]string{
		`#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <stdbool.h>
#include <linux/types.h>`,
		cut(t, header, "enum __bpf_usdt_arg_type {", "\n};"),
		cut(t, header, "struct __bpf_usdt_arg_spec {", "\n};"),
		cut(t, header, "#define BPF_USDT_MAX_ARG_CNT", "\n"),
		cut(t, header, "struct __bpf_usdt_spec {", "\n};"),
		`int main(void) {
	struct __bpf_usdt_spec s;
	memset(&s, 0, sizeof s);
` + fill.String() + `	printf("%zu %zu %zu %zu %zu %zu %zu %zu ", sizeof s, sizeof s.args[0],
		offsetof(struct __bpf_usdt_arg_spec, reg_off), offsetof(struct __bpf_usdt_arg_spec, arg_signed),
		offsetof(struct __bpf_usdt_arg_spec, arg_bitshift), offsetof(struct __bpf_usdt_spec, usdt_cookie),
		offsetof(struct __bpf_usdt_spec, arg_cnt), (size_t)BPF_USDT_MAX_ARG_CNT);
	for (size_t i = 0; i < sizeof s; i++)
		printf("%02x", ((unsigned char *)&s)[i]);
	printf("\n");
	return 0;
}`,
	}, "\n")
	bin := bridgetest.BuildC(t, gcc, t.TempDir(), "usdt_bpf_h_layout", src)
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	want := fmt.Sprintf("%d %d %d %d %d %d %d %d", usdtSpecSize, usdtArgSpecSize, usdtOffRegOff, usdtOffArgSigned,
		usdtOffArgBitshift, usdtOffCookie, usdtOffArgCnt, usdtMaxArgs)
	if got := strings.Join(f[:8], " "); got != want {
		t.Errorf("usdt.bpf.h sizeof/offsetof: %s, the encoder's %s", got, want)
	}
	raw, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(raw); h != f[8] {
		t.Errorf("bytes differ\nusdt.bpf.h %s\nharness    %s", f[8], h)
	}
	t.Logf("usdt.bpf.h: struct __bpf_usdt_spec %s bytes, arg spec %s, reg_off @%s, arg_signed @%s, arg_bitshift @%s, usdt_cookie @%s, arg_cnt @%s",
		f[0], f[1], f[2], f[3], f[4], f[5], f[6])
}

func TestUSDTSpecMarshalRefusesOverflow(t *testing.T) {
	s := usdtSpec{}
	s.Args[0].IdxRegOff = 0x1000
	if _, err := s.MarshalBinary(); err == nil {
		t.Error("a 13-bit idx_reg_off was encoded")
	}
	s.Args[0] = usdtArgSpec{RegOff: -2, ValOff: 7}
	raw, _ := s.MarshalBinary()
	if binary.LittleEndian.Uint16(raw[usdtOffRegOff:]) != 0xfffe || raw[0] != 7 {
		t.Errorf("encoded %x", raw[:24])
	}
}
