//! Home-ISA (x86-64) registers as CRIU stores them (`ThreadInfoX86` of a core image) ⇄
//! [`GuestState`].
//!
//! CRIU already rewinds a thread interrupted in a restartable system call when it dumps it
//! (rip back onto the 2-byte `syscall`, rax = the call number), so a native image's rip is
//! the `syscall` instruction itself: a block start, hence a resume point of the translation.
//! `orig_rax` is carried over unchanged.
//!
//! The x87 registers are in ST order in the FXSAVE area CRIU stores (`st_space`), and in
//! physical order in [`GuestState::fpu_regs`]; the abridged tag word is by physical register
//! in both. AVX upper halves are not part of the guest state (the translated side reports no
//! AVX); going to native they are zero.

use hcontainer_abi::{flags, GuestState, Gpr};
use hcontainer_criu_image::pb::{ThreadInfoX86, UserDescT, UserX86FpregsEntry, UserX86RegsEntry, UserX86XsaveEntry};

/// Why registers cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// A register array in the image has the wrong size.
    #[error("core image: {what} has {got} 32-bit words, expected {want}")]
    BadArea {
        /// Which area (`st_space`, `xmm_space`).
        what: &'static str,
        /// Words found.
        got: usize,
        /// Words expected.
        want: usize,
    },
    /// The thread runs in 32-bit compatibility mode.
    #[error("core image: thread in compat (32-bit) mode; only 64-bit threads are handled")]
    Compat,
}

/// Bits 11..13 of the x87 status word: TOP.
const FSW_TOP: u16 = 0x3800;

fn words_to_bytes(w: &[u32], out: &mut [u8]) {
    for (chunk, v) in out.chunks_exact_mut(4).zip(w) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
}

fn bytes_to_words(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// The guest state of a thread whose native registers are `ti`.
pub fn guest_state_from_core(ti: &ThreadInfoX86) -> Result<GuestState, RegsError> {
    let r = &ti.gpregs;
    if r.mode == Some(2) {
        return Err(RegsError::Compat);
    }
    let f = &ti.fpregs;
    if f.st_space.len() != 32 {
        return Err(RegsError::BadArea { what: "st_space", got: f.st_space.len(), want: 32 });
    }
    if f.xmm_space.len() != 64 {
        return Err(RegsError::BadArea { what: "xmm_space", got: f.xmm_space.len(), want: 64 });
    }
    let mut st = GuestState::new();
    let g = &mut st.gpr;
    g[Gpr::Rax as usize] = r.ax;
    g[Gpr::Rcx as usize] = r.cx;
    g[Gpr::Rdx as usize] = r.dx;
    g[Gpr::Rbx as usize] = r.bx;
    g[Gpr::Rsp as usize] = r.sp;
    g[Gpr::Rbp as usize] = r.bp;
    g[Gpr::Rsi as usize] = r.si;
    g[Gpr::Rdi as usize] = r.di;
    g[Gpr::R8 as usize] = r.r8;
    g[Gpr::R9 as usize] = r.r9;
    g[Gpr::R10 as usize] = r.r10;
    g[Gpr::R11 as usize] = r.r11;
    g[Gpr::R12 as usize] = r.r12;
    g[Gpr::R13 as usize] = r.r13;
    g[Gpr::R14 as usize] = r.r14;
    g[Gpr::R15 as usize] = r.r15;
    st.rip = r.ip;
    st.cc_op = flags::CcOp::Eflags as u64;
    st.cc_dst = r.flags & flags::bits::ARITH;
    st.cc_src1 = 0;
    st.cc_src2 = 0;
    st.rflags_other = r.flags & !flags::bits::ARITH;
    st.fs_base = r.fs_base;
    st.gs_base = r.gs_base;
    st.orig_rax = r.orig_ax;
    st.mxcsr = f.mxcsr;
    // The x87 control, status and abridged tag words are 16 and 8 bits wide.
    st.fpu_cw = (f.cwd & 0xffff) as u16;
    let swd = (f.swd & 0xffff) as u16;
    st.fpu_sw = swd & !FSW_TOP;
    st.fpu_top = u32::from((swd & FSW_TOP) >> 11);
    st.fpu_tag = f.twd & 0xff;
    for i in 0..8 {
        let phys = (st.fpu_top as usize + i) % 8;
        let mut bytes = [0u8; 16];
        words_to_bytes(&f.st_space[4 * i..4 * i + 4], &mut bytes);
        // Only the 10 significant bytes; the padding is always zero in GuestState.
        bytes[10..].fill(0);
        st.fpu_regs[phys].bytes = bytes;
    }
    for i in 0..16 {
        words_to_bytes(&f.xmm_space[4 * i..4 * i + 4], &mut st.xmm[i]);
    }
    Ok(st)
}

/// x86-64 registers of a thread that has none in the image (it ran on another host ISA):
/// 64-bit user code and stack selectors, the x87 and SSE units in their initial state with
/// an XSAVE area holding them, and the three GDT TLS entries unused.
pub fn fresh_x86() -> ThreadInfoX86 {
    let gpregs = UserX86RegsEntry { cs: 0x33, ss: 0x2b, flags: 0x202, mode: Some(1), ..Default::default() };
    let fpregs = UserX86FpregsEntry {
        cwd: 0x37f,
        mxcsr: 0x1f80,
        mxcsr_mask: 0xffff,
        st_space: vec![0; 32],
        xmm_space: vec![0; 64],
        padding: vec![0; 24],
        xsave: Some(UserX86XsaveEntry { xstate_bv: 0b11, ymmh_space: vec![0; 64], ..Default::default() }),
        ..Default::default()
    };
    let tls = (12..15)
        .map(|n| UserDescT { entry_number: n, read_exec_only: true, seg_not_present: true, ..Default::default() })
        .collect();
    ThreadInfoX86 { clear_tid_addr: 0, gpregs, fpregs, tls }
}

/// Writes the guest state `st` into native registers `ti`, keeping what the guest state does
/// not hold (segment selectors, x87 instruction pointers, `mxcsr_mask`); AVX upper halves and
/// other extended state beyond SSE are cleared.
pub fn core_from_guest_state(st: &GuestState, ti: &mut ThreadInfoX86) {
    let g = &st.gpr;
    let r: &mut UserX86RegsEntry = &mut ti.gpregs;
    r.ax = g[Gpr::Rax as usize];
    r.cx = g[Gpr::Rcx as usize];
    r.dx = g[Gpr::Rdx as usize];
    r.bx = g[Gpr::Rbx as usize];
    r.sp = g[Gpr::Rsp as usize];
    r.bp = g[Gpr::Rbp as usize];
    r.si = g[Gpr::Rsi as usize];
    r.di = g[Gpr::Rdi as usize];
    r.r8 = g[Gpr::R8 as usize];
    r.r9 = g[Gpr::R9 as usize];
    r.r10 = g[Gpr::R10 as usize];
    r.r11 = g[Gpr::R11 as usize];
    r.r12 = g[Gpr::R12 as usize];
    r.r13 = g[Gpr::R13 as usize];
    r.r14 = g[Gpr::R14 as usize];
    r.r15 = g[Gpr::R15 as usize];
    r.ip = st.rip;
    r.flags = flags::materialize(st.cc_op, st.cc_dst, st.cc_src1, st.cc_src2) | (st.rflags_other & !flags::bits::ARITH);
    r.fs_base = st.fs_base;
    r.gs_base = st.gs_base;
    r.orig_ax = st.orig_rax;
    r.mode = Some(1);
    let f: &mut UserX86FpregsEntry = &mut ti.fpregs;
    f.mxcsr = st.mxcsr;
    f.cwd = u32::from(st.fpu_cw);
    f.swd = u32::from((st.fpu_sw & !FSW_TOP) | (((st.fpu_top & 7) as u16) << 11));
    f.twd = st.fpu_tag & 0xff;
    let mut stb = [0u8; 128];
    for i in 0..8 {
        let phys = (st.fpu_top as usize + i) % 8;
        stb[16 * i..16 * i + 10].copy_from_slice(&st.fpu_regs[phys].bytes[..10]);
    }
    f.st_space = bytes_to_words(&stb).collect();
    let mut xb = [0u8; 256];
    for i in 0..16 {
        xb[16 * i..16 * i + 16].copy_from_slice(&st.xmm[i]);
    }
    f.xmm_space = bytes_to_words(&xb).collect();
    if let Some(x) = f.xsave.as_mut() {
        // Keep x87 and SSE (bits 0, 1); AVX and beyond return to their initial state.
        x.xstate_bv &= 0b11;
        x.ymmh_space.iter_mut().for_each(|w| *w = 0);
        x.zmm_upper.iter_mut().for_each(|w| *w = 0);
        x.hi16_zmm.iter_mut().for_each(|w| *w = 0);
        x.opmask_reg.iter_mut().for_each(|w| *w = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ThreadInfoX86 {
        let regs = UserX86RegsEntry {
            r15: 15,
            r14: 14,
            r13: 13,
            r12: 12,
            bp: 0x7ffe_0000_1000,
            bx: 3,
            r11: 0x246,
            r10: 10,
            r9: 9,
            r8: 8,
            ax: 35,
            cx: 0x40_1000,
            dx: 2,
            si: 6,
            di: 7,
            orig_ax: 35,
            ip: 0x40_1234,
            cs: 0x33,
            flags: 0x10_0a47, // ID, OF, IF, ZF, PF, CF and bit 1
            sp: 0x7ffe_0000_0ff0,
            ss: 0x2b,
            fs_base: 0x4c_5000,
            gs_base: 0,
            ds: 0,
            es: 0,
            fs: 0,
            gs: 0,
            mode: Some(1),
        };
        let mut st_space = vec![0u32; 32];
        // ST(0) = 1.0 (significand 0x8000_0000_0000_0000, exponent 0x3fff).
        st_space[1] = 0x8000_0000;
        st_space[2] = 0x3fff;
        let fp = UserX86FpregsEntry {
            cwd: 0x37f,
            swd: (7 << 11) | 0x20,
            twd: 0x80,
            fop: 0,
            rip: 0,
            rdp: 0,
            mxcsr: 0x1fa0,
            mxcsr_mask: 0xffff,
            st_space,
            xmm_space: (0..64).collect(),
            padding: vec![0; 24],
            xsave: None,
        };
        ThreadInfoX86 { clear_tid_addr: 0, gpregs: regs, fpregs: fp, tls: vec![] }
    }

    #[test]
    fn native_registers_round_trip_through_guest_state() {
        let ti = sample();
        let st = guest_state_from_core(&ti).expect("convert");
        assert_eq!(st.gpr[Gpr::Rax as usize], 35);
        assert_eq!(st.gpr[Gpr::Rsp as usize], 0x7ffe_0000_0ff0);
        assert_eq!(st.rip, 0x40_1234);
        assert_eq!(st.fs_base, 0x4c_5000);
        assert_eq!(st.fpu_top, 7);
        // ST(0) lives in physical register TOP = 7.
        assert_eq!(&st.fpu_regs[7].bytes[..10], &[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
        assert_eq!(st.xmm[1][0], 4);
        assert_eq!(
            flags::materialize(st.cc_op, st.cc_dst, st.cc_src1, st.cc_src2) | st.rflags_other,
            0x10_0a47
        );
        let mut back = sample();
        back.gpregs.ax = 0;
        back.gpregs.flags = 0;
        back.fpregs.st_space = vec![0xdead; 32];
        back.fpregs.xmm_space = vec![];
        core_from_guest_state(&st, &mut back);
        assert_eq!(back, ti);
    }

    #[test]
    fn lazy_flags_are_materialized_for_native() {
        let mut st = GuestState::new();
        // `sub` of 1 - 2 on 64 bits: CF, SF, AF, PF set.
        st.cc_op = flags::CcOp::Sub.with_size(8);
        st.cc_src1 = 1;
        st.cc_src2 = 2;
        st.cc_dst = u64::MAX;
        let mut ti = sample();
        core_from_guest_state(&st, &mut ti);
        let f = ti.gpregs.flags;
        assert_eq!(f & flags::bits::CF, flags::bits::CF);
        assert_eq!(f & flags::bits::SF, flags::bits::SF);
        assert_eq!(f & flags::bits::ZF, 0);
    }

    #[test]
    fn short_register_areas_are_errors() {
        let mut ti = sample();
        ti.fpregs.xmm_space.truncate(10);
        assert!(matches!(guest_state_from_core(&ti), Err(RegsError::BadArea { what: "xmm_space", .. })));
    }
}
