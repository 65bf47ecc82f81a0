/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Functions whose first instruction is fixed by hand, for the nop/nop5 uprobe
 * cases: the compiler gives no such guarantee (and may emit endbr64 first).
 * Each returns a + b (rdi + rsi).
 */
	.text

	.globl pc_nop5
	.type pc_nop5, @function
	.balign 16
pc_nop5:
	.byte 0x0f, 0x1f, 0x44, 0x00, 0x00	/* nopl 0x0(%rax,%rax,1): the 5-byte nop */
	lea (%rdi,%rsi), %rax
	ret
	.size pc_nop5, .-pc_nop5

	.globl pc_nop10
	.type pc_nop10, @function
	.balign 16
pc_nop10:
	.byte 0x66, 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00	/* data16 nopw 0x0(%rax,%rax,1): a 10-byte nop */
	lea (%rdi,%rsi), %rax
	ret
	.size pc_nop10, .-pc_nop10

/* The common 10-byte nop, with a CS segment-override prefix (0x2e): x86's
 * uprobe instruction decoder refuses segment prefixes. */
	.globl pc_nop10cs
	.type pc_nop10cs, @function
	.balign 16
pc_nop10cs:
	.byte 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00	/* nopw %cs:0x0(%rax,%rax,1) */
	lea (%rdi,%rsi), %rax
	ret
	.size pc_nop10cs, .-pc_nop10cs

	.globl pc_nop1
	.type pc_nop1, @function
	.balign 16
pc_nop1:
	nop
	lea (%rdi,%rsi), %rax
	ret
	.size pc_nop1, .-pc_nop1

/*
 * A nop5 that crosses a page boundary: the kernel must not optimise it (the
 * write would not be atomic) but the uprobe must still fire.
 */
	.balign 4096
	.skip 4093, 0xcc
	.globl pc_nop5_pagecross
	.type pc_nop5_pagecross, @function
pc_nop5_pagecross:
	.byte 0x0f, 0x1f, 0x44, 0x00, 0x00
	lea (%rdi,%rsi), %rax
	ret
	.size pc_nop5_pagecross, .-pc_nop5_pagecross

/*
 * USDT sites written by hand, with their .note.stapsdt entries, because no
 * header emits these instruction pairs any more:
 *   probeconf:nop5  — `nop; nop5`: the pair the newer usdt.h emitted so the probe
 *                     can sit on the nop5 and be optimised. libbpf 1.7 moves the
 *                     probe to ip+1 when the kernel has the uprobe syscall.
 *   probeconf:nop10 — `nop; nop10`: the pair that replaced it (the call could
 *                     corrupt the red zone), which libbpf 1.7 does not recognise.
 * Each takes one argument in %rdi and returns it.
 */
	.pushsection .stapsdt.base, "aG", @progbits, .stapsdt.base, comdat
	.weak _.stapsdt.base
	.hidden _.stapsdt.base
_.stapsdt.base:
	.space 1
	.size _.stapsdt.base, 1
	.popsection

	.macro USDT_NOTE pc, name
	.pushsection .note.stapsdt, "?", @note
	.balign 4
	.4byte 992f-991f, 994f-993f, 3
991:	.asciz "stapsdt"
992:	.balign 4
993:	.8byte \pc
	.8byte _.stapsdt.base
	.8byte 0
	.asciz "probeconf"
	.asciz "\name"
	.asciz "8@%rdi"
994:	.balign 4
	.popsection
	.endm

	.text
	.globl pc_usdt_nop5
	.type pc_usdt_nop5, @function
	.balign 16
pc_usdt_nop5:
pc_usdt_nop5_site:
	nop
	.byte 0x0f, 0x1f, 0x44, 0x00, 0x00
	mov %rdi, %rax
	ret
	.size pc_usdt_nop5, .-pc_usdt_nop5
	USDT_NOTE pc_usdt_nop5_site, nop5

	.globl pc_usdt_nop10
	.type pc_usdt_nop10, @function
	.balign 16
pc_usdt_nop10:
pc_usdt_nop10_site:
	nop
	.byte 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00
	mov %rdi, %rax
	ret
	.size pc_usdt_nop10, .-pc_usdt_nop10
	USDT_NOTE pc_usdt_nop10_site, nop10

	.section .note.GNU-stack,"",@progbits
