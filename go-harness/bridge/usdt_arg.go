package bridge

import (
	"fmt"
	"math"
	"runtime"

	"golang.org/x/sys/unix"
)

// USDT argument specs, parsed the way libbpf 1.7 does (usdt.c:
// parse_usdt_spec, and parse_usdt_arg + calc_pt_regs_off for x86_64).
//
// libbpf parses each argument with a fixed sequence of sscanf patterns. The
// harness reproduces those patterns with a small scanner that follows glibc's
// sscanf for the directives they use (see scanf), so that every spec string
// libbpf accepts is accepted with the same result, and every one it refuses is
// refused with the same errno:
//
//	EINVAL  unrecognized arg spec (e.g. `-8@sym(%rip)`), size not 1/2/4/8,
//	        SIB scale not 1/2/4/8
//	ENOENT  unknown register name
//	E2BIG   more than 12 arguments

// Argument types: enum __bpf_usdt_arg_type (usdt.bpf.h), enum usdt_arg_type (usdt.c).
const (
	usdtArgConst    = 0 // BPF_USDT_ARG_CONST: "-4@$42"
	usdtArgReg      = 1 // BPF_USDT_ARG_REG: "-8@%rdi", "-1@%al"
	usdtArgRegDeref = 2 // BPF_USDT_ARG_REG_DEREF: "-8@-8(%rsp)", "8@(%rax)"
	usdtArgSIB      = 3 // BPF_USDT_ARG_SIB (libbpf 1.7): "-1@-96(%rbp,%rax,8)"
)

// usdtMaxArgs is BPF_USDT_MAX_ARG_CNT (usdt.bpf.h) and USDT_MAX_ARG_CNT (usdt.c).
const usdtMaxArgs = 12

// usdtArgSpec is struct __bpf_usdt_arg_spec (usdt.bpf.h, libbpf 1.7) field by
// field; MarshalUSDTSpec lays it out in the C layout.
type usdtArgSpec struct {
	ValOff        uint64 // constant, or the memory offset of a dereference
	ArgType       uint8  // USDTArg*
	IdxRegOff     uint16 // SIB: offsetof(struct pt_regs, index register), 12 bits
	ScaleBitshift uint8  // SIB: log2(scale), 4 bits
	RegOff        int16  // offsetof(struct pt_regs, register)
	ArgSigned     bool
	ArgBitshift   int8 // 64 - size*8: bits to clear (and sign-extend) after the read
}

// usdtSpec is struct __bpf_usdt_spec: one site's argument specs and the
// user's cookie (what bpf_usdt_cookie() returns).
type usdtSpec struct {
	Args   [usdtMaxArgs]usdtArgSpec
	Cookie uint64
	ArgCnt int16
}

// x86_64 struct pt_regs offsets (arch/x86/include/uapi/asm/ptrace.h), as
// libbpf's calc_pt_regs_off names them: 64-, 32-, 16- and 8-bit names of one
// register all map to the 64-bit slot. A sub-register is read as the whole
// 8-byte slot and narrowed by the size's arg_bitshift, so %ah and friends
// (bits 8-15) are not expressible and libbpf does not list them.
var ptRegsX8664 = []struct {
	names [4]string
	off   int16
}{
	{[4]string{"rip", "eip", "", ""}, 128},
	{[4]string{"rax", "eax", "ax", "al"}, 80},
	{[4]string{"rbx", "ebx", "bx", "bl"}, 40},
	{[4]string{"rcx", "ecx", "cx", "cl"}, 88},
	{[4]string{"rdx", "edx", "dx", "dl"}, 96},
	{[4]string{"rsi", "esi", "si", "sil"}, 104},
	{[4]string{"rdi", "edi", "di", "dil"}, 112},
	{[4]string{"rbp", "ebp", "bp", "bpl"}, 32},
	{[4]string{"rsp", "esp", "sp", "spl"}, 152},
	{[4]string{"r8", "r8d", "r8w", "r8b"}, 72},
	{[4]string{"r9", "r9d", "r9w", "r9b"}, 64},
	{[4]string{"r10", "r10d", "r10w", "r10b"}, 56},
	{[4]string{"r11", "r11d", "r11w", "r11b"}, 48},
	{[4]string{"r12", "r12d", "r12w", "r12b"}, 24},
	{[4]string{"r13", "r13d", "r13w", "r13b"}, 16},
	{[4]string{"r14", "r14d", "r14w", "r14b"}, 8},
	{[4]string{"r15", "r15d", "r15w", "r15b"}, 0},
}

// calcPtRegsOff is libbpf's calc_pt_regs_off for x86_64. The rip row has two
// empty names, but the scanner never yields an empty register name.
func calcPtRegsOff(reg string) (int16, error) {
	for _, r := range ptRegsX8664 {
		for _, n := range r.names {
			if n == reg {
				return r.off, nil
			}
		}
	}
	return 0, fmt.Errorf("usdt: unrecognized register '%s': %w", reg, unix.ENOENT)
}

// parseUSDTSpec parses a note's argument string into a spec, as libbpf's
// parse_usdt_spec: at most 12 arguments, each of size 1, 2, 4 or 8 (negative:
// signed). cookie is the user's cookie. provider and name only label errors.
func parseUSDTSpec(provider, name, args string, cookie uint64) (usdtSpec, error) {
	spec := usdtSpec{Cookie: cookie}
	if runtime.GOARCH != "amd64" {
		return spec, &unsupportedError{feature: "USDT on " + runtime.GOARCH,
			hint: "the bridge parses argument specs for x86_64 only (libbpf has per-architecture rules)", err: unix.EOPNOTSUPP}
	}
	s := args
	for len(s) > 0 {
		if spec.ArgCnt >= usdtMaxArgs {
			return spec, fmt.Errorf("usdt: too many USDT arguments (> %d) for '%s:%s' with args spec '%s': %w",
				usdtMaxArgs, provider, name, args, unix.E2BIG)
		}
		arg := &spec.Args[spec.ArgCnt]
		n, size, err := parseUSDTArg(s, int(spec.ArgCnt), arg)
		if err != nil {
			return spec, err
		}
		arg.ArgSigned = size < 0
		if size < 0 {
			size = -size
		}
		switch size {
		case 1, 2, 4, 8:
			arg.ArgBitshift = int8(64 - size*8)
		default:
			return spec, fmt.Errorf("usdt: unsupported arg #%d (spec '%s') size: %d: %w", spec.ArgCnt, s, size, unix.EINVAL)
		}
		s = s[n:]
		spec.ArgCnt++
	}
	return spec, nil
}

// parseUSDTArg is libbpf's parse_usdt_arg for x86_64: the same sscanf
// patterns, tried in the same order, with the same variables shared between
// attempts (a later pattern sees what an earlier, failed one assigned). It
// returns how many bytes of s the argument took (sscanf's %n) and its signed
// size.
func parseUSDTArg(s string, argNum int, arg *usdtArgSpec) (n int, size int32, err error) {
	// The C function's locals: char reg_name[16], idx_reg_name[16]; int len,
	// scale = 1; long off = 0; int *arg_sz.
	var (
		regName, idxRegName string
		off                 int64
		scale               int32 = 1
		consumed                  = -1
	)
	// scan runs one sscanf and stores into the shared variables in the order
	// of the pattern's conversions, as C would through its pointers.
	scan := func(format string, dst ...any) int {
		got, vals := scanf(s, format)
		for i, v := range vals {
			switch d := dst[i].(type) {
			case *int32:
				*d = v.(int32)
			case *int64:
				*d = v.(int64)
			case *string:
				*d = v.(string)
			case *int:
				*d = v.(int)
			}
		}
		return got
	}

	switch {
	case scan(" %d @ %ld ( %%%15[^,] , %%%15[^,] , %d ) %n", &size, &off, &regName, &idxRegName, &scale, &consumed) == 5,
		scan(" %d @ ( %%%15[^,] , %%%15[^,] , %d ) %n", &size, &regName, &idxRegName, &scale, &consumed) == 4,
		scan(" %d @ %ld ( %%%15[^,] , %%%15[^)] ) %n", &size, &off, &regName, &idxRegName, &consumed) == 4,
		scan(" %d @ ( %%%15[^,] , %%%15[^)] ) %n", &size, &regName, &idxRegName, &consumed) == 3:
		// Scale Index Base: 1@-96(%rbp,%rax,8), 1@(%rbp,%rax,8), 1@-96(%rbp,%rax), 1@(%rbp,%rax)
		arg.ArgType = usdtArgSIB
		arg.ValOff = uint64(off)
		if arg.RegOff, err = calcPtRegsOff(regName); err != nil {
			return 0, 0, err
		}
		idx, err := calcPtRegsOff(idxRegName)
		if err != nil {
			return 0, 0, err
		}
		arg.IdxRegOff = uint16(idx) & 0xfff // a 12-bit field
		switch scale {
		case 1:
			arg.ScaleBitshift = 0
		case 2:
			arg.ScaleBitshift = 1
		case 4:
			arg.ScaleBitshift = 2
		case 8:
			arg.ScaleBitshift = 3
		default:
			return 0, 0, fmt.Errorf("usdt: invalid SIB scale %d, expected 1, 2, 4, 8: %w", scale, unix.EINVAL)
		}
	case scan(" %d @ %ld ( %%%15[^)] ) %n", &size, &off, &regName, &consumed) == 3:
		// Memory dereference, e.g. -4@-20(%rbp)
		arg.ArgType = usdtArgRegDeref
		arg.ValOff = uint64(off)
		if arg.RegOff, err = calcPtRegsOff(regName); err != nil {
			return 0, 0, err
		}
	case scan(" %d @ ( %%%15[^)] ) %n", &size, &regName, &consumed) == 2:
		// Memory dereference without offset, e.g. 8@(%rsp)
		arg.ArgType = usdtArgRegDeref
		arg.ValOff = 0
		if arg.RegOff, err = calcPtRegsOff(regName); err != nil {
			return 0, 0, err
		}
	case scan(" %d @ %%%15s %n", &size, &regName, &consumed) == 2:
		// Register, e.g. -4@%eax
		arg.ArgType = usdtArgReg
		arg.ValOff = 0
		if arg.RegOff, err = calcPtRegsOff(regName); err != nil {
			return 0, 0, err
		}
	case scan(" %d @ $%ld %n", &size, &off, &consumed) == 2:
		// Constant, e.g. 4@$71
		arg.ArgType = usdtArgConst
		arg.ValOff = uint64(off)
		arg.RegOff = 0
	default:
		return 0, 0, fmt.Errorf("usdt: unrecognized arg #%d spec '%s': %w", argNum, s, unix.EINVAL)
	}
	if consumed <= 0 {
		// sscanf counted every assignment but stopped before %n (a literal
		// after the last conversion did not match, e.g. "1@-8(%rbp,%rax,8"):
		// libbpf would then read an uninitialised len. Refuse instead.
		return 0, 0, fmt.Errorf("usdt: arg #%d spec '%s' is incomplete (libbpf's parse is undefined here): %w",
			argNum, s, unix.EINVAL)
	}
	return consumed, size, nil
}

// scanf matches s against format like glibc's sscanf, for the directives
// libbpf's USDT patterns use: white space (skips any white space), ordinary
// characters (must match), %% (skips white space, then '%'), %d and %ld
// (skip white space, optional sign, decimal digits; the value saturates at
// the long range as strtol does, and %d keeps the low 32 bits as glibc's
// store into an int does), %N[^set] (1 to N characters not in set, no
// white-space skip), %Ns (skips white space, 1 to N non-white-space
// characters) and %n (characters consumed so far; not counted).
//
// It returns the number of assigned conversions, as sscanf does (it never
// returns EOF: callers compare with a positive count), and the assigned
// values in order: int32 for %d, int64 for %ld, string for %[ and %s, int
// for %n.
func scanf(s, format string) (int, []any) {
	pos, count := 0, 0
	var vals []any
	skipSpace := func() {
		for pos < len(s) && isCSpace(s[pos]) {
			pos++
		}
	}
	for f := 0; f < len(format); {
		fc := format[f]
		if isCSpace(fc) {
			for f < len(format) && isCSpace(format[f]) {
				f++
			}
			skipSpace()
			continue
		}
		if fc != '%' {
			if pos >= len(s) || s[pos] != fc {
				return count, vals
			}
			pos++
			f++
			continue
		}
		f++
		width := 0
		for f < len(format) && format[f] >= '0' && format[f] <= '9' {
			width = width*10 + int(format[f]-'0')
			f++
		}
		long := false
		if f < len(format) && format[f] == 'l' {
			long = true
			f++
		}
		if f >= len(format) {
			return count, vals
		}
		conv := format[f]
		f++
		switch conv {
		case '%':
			skipSpace()
			if pos >= len(s) || s[pos] != '%' {
				return count, vals
			}
			pos++
		case 'd':
			skipSpace()
			v, n, ok := scanLong(s[pos:])
			if !ok {
				return count, vals
			}
			pos += n
			if long {
				vals = append(vals, v)
			} else {
				vals = append(vals, int32(v))
			}
			count++
		case 's':
			skipSpace()
			start := pos
			for pos < len(s) && !isCSpace(s[pos]) && (width == 0 || pos-start < width) {
				pos++
			}
			if pos == start {
				return count, vals
			}
			vals = append(vals, s[start:pos])
			count++
		case '[':
			negate := false
			if f < len(format) && format[f] == '^' {
				negate = true
				f++
			}
			setStart := f
			if f < len(format) && format[f] == ']' { // a leading ']' is a member
				f++
			}
			for f < len(format) && format[f] != ']' {
				f++
			}
			set := format[setStart:f]
			f++ // the closing ']'
			start := pos
			for pos < len(s) && (width == 0 || pos-start < width) {
				in := false
				for i := 0; i < len(set); i++ {
					if set[i] == s[pos] {
						in = true
						break
					}
				}
				if in == negate {
					break
				}
				pos++
			}
			if pos == start {
				return count, vals
			}
			vals = append(vals, s[start:pos])
			count++
		case 'n':
			vals = append(vals, pos)
		default:
			panic("scanf: unsupported conversion %" + string(conv))
		}
	}
	return count, vals
}

// scanLong reads an optionally signed decimal number at the start of s like
// strtol (base 10), saturating at the int64 range. It reports the bytes used.
func scanLong(s string) (int64, int, bool) {
	i, neg := 0, false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	digits := i
	var mag uint64
	overflow := false
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if mag > (math.MaxUint64-d)/10 {
			overflow = true
		} else {
			mag = mag*10 + d
		}
		i++
	}
	if i == digits {
		return 0, 0, false
	}
	switch {
	case neg && (overflow || mag > 1<<63):
		return math.MinInt64, i, true
	case !neg && (overflow || mag > math.MaxInt64):
		return math.MaxInt64, i, true
	case neg:
		return int64(-mag), i, true // -(1<<63) wraps to MinInt64, as wanted
	}
	return int64(mag), i, true
}

// isCSpace is C's isspace in the "C" locale.
func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}
