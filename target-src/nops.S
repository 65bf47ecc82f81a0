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

	.section .note.GNU-stack,"",@progbits
