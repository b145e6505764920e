//! The guest register file.

/// Version of the [`GuestState`] layout. Bump on any change to field order, size or meaning;
/// images and the metadata section record it, and readers refuse other versions.
pub const GUEST_STATE_VERSION: u32 = 1;

/// x86-64 general-purpose registers, in the instruction encoding's order.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Gpr {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

/// One x87 register as stored in [`GuestState`]: the 80-bit extended value in its memory
/// format (64-bit significand little-endian, then sign and 15-bit exponent), padded to 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct X87Reg {
    /// 10 significant bytes, then 6 bytes of padding (always zero).
    pub bytes: [u8; 16],
}

/// The complete x86-64 user register state of one guest thread.
///
/// Translated code keeps registers in host registers inside a translated function and
/// writes them back here at every exit (dispatch, runtime call, syscall, migration point),
/// so at any point the runtime or recode can observe it, this struct is the whole truth.
///
/// Condition flags are stored lazily (see [`crate::flags`]): `cc_op` says which operation
/// last set them and `cc_dst`/`cc_src1`/`cc_src2` hold its result and operands; the
/// architectural RFLAGS is [`crate::flags::materialize`] of those plus `rflags_other`
/// (DF and the bits no arithmetic touches).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
pub struct GuestState {
    /// General-purpose registers, indexed by [`Gpr`].
    pub gpr: [u64; 16],
    /// Address of the next guest instruction to execute.
    pub rip: u64,
    /// Lazy flags: the [`crate::flags::CcOp`] that last set the arithmetic flags.
    pub cc_op: u64,
    /// Lazy flags: that operation's result.
    pub cc_dst: u64,
    /// Lazy flags: its first operand.
    pub cc_src1: u64,
    /// Lazy flags: its second operand (or carry-in / preserved CF, per op).
    pub cc_src2: u64,
    /// RFLAGS bits outside CF/PF/AF/ZF/SF/OF: DF (bit 10), IF, ID and the always-one bit 1.
    pub rflags_other: u64,
    /// FS segment base (TLS on x86-64 Linux).
    pub fs_base: u64,
    /// GS segment base.
    pub gs_base: u64,
    /// SSE registers xmm0..xmm15, little-endian lanes.
    pub xmm: [[u8; 16]; 16],
    /// MXCSR control/status register.
    pub mxcsr: u32,
    /// x87 control word.
    pub fpu_cw: u16,
    /// x87 status word; bits 11..13 (TOP) are kept in `fpu_top`, not here.
    pub fpu_sw: u16,
    /// x87 stack top (0..=7).
    pub fpu_top: u32,
    /// x87 abridged tag word: bit i set when physical register i is valid.
    pub fpu_tag: u32,
    /// x87 physical registers R0..R7 (ST(i) is `fpu_regs[(fpu_top + i) % 8]`).
    pub fpu_regs: [X87Reg; 8],
    /// Non-zero when the runtime asks translated code to stop at the next check point
    /// (a pending signal or a migration request). Polled by translated code.
    pub poll: u64,
    /// Syscall number of the interrupted system call, as in the kernel's `orig_rax`
    /// (`-1` when not in a syscall). Recode reads and writes it.
    pub orig_rax: u64,
    /// The runtime's per-thread data; opaque to translated code.
    pub runtime: u64,
    /// Reserved for future fields without changing the size; always zero.
    pub reserved: [u64; 5],
}

impl GuestState {
    /// A state with all registers zero, flags clear, default MXCSR and x87 control word.
    pub const fn new() -> Self {
        GuestState {
            gpr: [0; 16],
            rip: 0,
            cc_op: crate::flags::CcOp::Eflags as u64,
            cc_dst: 0,
            cc_src1: 0,
            cc_src2: 0,
            rflags_other: 0x202,
            fs_base: 0,
            gs_base: 0,
            xmm: [[0; 16]; 16],
            mxcsr: 0x1f80,
            fpu_cw: 0x037f,
            fpu_sw: 0,
            fpu_top: 0,
            fpu_tag: 0,
            fpu_regs: [X87Reg { bytes: [0; 16] }; 8],
            poll: 0,
            orig_rax: u64::MAX,
            runtime: 0,
            reserved: [0; 5],
        }
    }
}

impl Default for GuestState {
    fn default() -> Self {
        Self::new()
    }
}

/// Byte offsets of [`GuestState`] fields, for code generators and recode.
pub mod offsets {
    use super::GuestState;
    use core::mem::offset_of;

    /// Offset of general-purpose register `i` (encoding order).
    pub const fn gpr(i: u8) -> u32 {
        (offset_of!(GuestState, gpr) + 8 * i as usize) as u32
    }
    /// Offset of xmm register `i`.
    pub const fn xmm(i: u8) -> u32 {
        (offset_of!(GuestState, xmm) + 16 * i as usize) as u32
    }
    /// Offset of x87 physical register `i`.
    pub const fn fpu_reg(i: u8) -> u32 {
        (offset_of!(GuestState, fpu_regs) + 16 * i as usize) as u32
    }
    #[allow(missing_docs)]
    pub const RIP: u32 = offset_of!(GuestState, rip) as u32;
    #[allow(missing_docs)]
    pub const CC_OP: u32 = offset_of!(GuestState, cc_op) as u32;
    #[allow(missing_docs)]
    pub const CC_DST: u32 = offset_of!(GuestState, cc_dst) as u32;
    #[allow(missing_docs)]
    pub const CC_SRC1: u32 = offset_of!(GuestState, cc_src1) as u32;
    #[allow(missing_docs)]
    pub const CC_SRC2: u32 = offset_of!(GuestState, cc_src2) as u32;
    #[allow(missing_docs)]
    pub const RFLAGS_OTHER: u32 = offset_of!(GuestState, rflags_other) as u32;
    #[allow(missing_docs)]
    pub const FS_BASE: u32 = offset_of!(GuestState, fs_base) as u32;
    #[allow(missing_docs)]
    pub const GS_BASE: u32 = offset_of!(GuestState, gs_base) as u32;
    #[allow(missing_docs)]
    pub const MXCSR: u32 = offset_of!(GuestState, mxcsr) as u32;
    #[allow(missing_docs)]
    pub const FPU_CW: u32 = offset_of!(GuestState, fpu_cw) as u32;
    #[allow(missing_docs)]
    pub const FPU_SW: u32 = offset_of!(GuestState, fpu_sw) as u32;
    #[allow(missing_docs)]
    pub const FPU_TOP: u32 = offset_of!(GuestState, fpu_top) as u32;
    #[allow(missing_docs)]
    pub const FPU_TAG: u32 = offset_of!(GuestState, fpu_tag) as u32;
    #[allow(missing_docs)]
    pub const POLL: u32 = offset_of!(GuestState, poll) as u32;
    #[allow(missing_docs)]
    pub const ORIG_RAX: u32 = offset_of!(GuestState, orig_rax) as u32;
    /// Total size of the struct.
    pub const SIZE: u32 = core::mem::size_of::<GuestState>() as u32;
}

const _: () = assert!(core::mem::size_of::<GuestState>() == 656);
