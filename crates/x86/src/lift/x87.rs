//! x87 instructions: which x87 operation (an `hcontainer_semantics` x87 op id) an iced-x86
//! instruction is, for the `Helper::X87` call the lifter emits. The helper receives the
//! memory operand's address (or 0) as its second argument and does everything else: the
//! register stack, the status word, memory stores and, for `fcomi`/`fnstsw ax`, the flags and
//! `ax` in the state.

use hcontainer_semantics::x87::{Kind, Opc, X87Op};
use iced_x86::{Code, Instruction, Register};

/// `i` of the st(i) operand number `op` of `instr`.
fn sti(instr: &Instruction, op: u32) -> u8 {
    let r = instr.op_register(op);
    if (Register::ST0..=Register::ST7).contains(&r) {
        (r as u32 - Register::ST0 as u32) as u8
    } else {
        0
    }
}

/// The x87 op id of `instr` (with code `code`), or `None` if it is not an x87 instruction
/// the helper implements (the 16-bit operand-size forms of fsave/frstor/fstenv/fldenv).
pub fn x87_op(code: Code, instr: &Instruction) -> Option<u32> {
    use Code as C;
    use Kind::*;
    let (opc, kind, i) = match code {
        // Arithmetic.
        C::Fadd_m32fp => (Opc::Add, M32, 0),
        C::Fadd_m64fp => (Opc::Add, M64, 0),
        C::Fiadd_m16int => (Opc::Add, I16, 0),
        C::Fiadd_m32int => (Opc::Add, I32, 0),
        C::Fadd_st0_sti => (Opc::Add, St, sti(instr, 1)),
        C::Fadd_sti_st0 => (Opc::Add, StRev, sti(instr, 0)),
        C::Faddp_sti_st0 => (Opc::Add, StPop, sti(instr, 0)),
        C::Fmul_m32fp => (Opc::Mul, M32, 0),
        C::Fmul_m64fp => (Opc::Mul, M64, 0),
        C::Fimul_m16int => (Opc::Mul, I16, 0),
        C::Fimul_m32int => (Opc::Mul, I32, 0),
        C::Fmul_st0_sti => (Opc::Mul, St, sti(instr, 1)),
        C::Fmul_sti_st0 => (Opc::Mul, StRev, sti(instr, 0)),
        C::Fmulp_sti_st0 => (Opc::Mul, StPop, sti(instr, 0)),
        C::Fsub_m32fp => (Opc::Sub, M32, 0),
        C::Fsub_m64fp => (Opc::Sub, M64, 0),
        C::Fisub_m16int => (Opc::Sub, I16, 0),
        C::Fisub_m32int => (Opc::Sub, I32, 0),
        C::Fsub_st0_sti => (Opc::Sub, St, sti(instr, 1)),
        C::Fsub_sti_st0 => (Opc::Sub, StRev, sti(instr, 0)),
        C::Fsubp_sti_st0 => (Opc::Sub, StPop, sti(instr, 0)),
        C::Fsubr_m32fp => (Opc::SubR, M32, 0),
        C::Fsubr_m64fp => (Opc::SubR, M64, 0),
        C::Fisubr_m16int => (Opc::SubR, I16, 0),
        C::Fisubr_m32int => (Opc::SubR, I32, 0),
        C::Fsubr_st0_sti => (Opc::SubR, St, sti(instr, 1)),
        C::Fsubr_sti_st0 => (Opc::SubR, StRev, sti(instr, 0)),
        C::Fsubrp_sti_st0 => (Opc::SubR, StPop, sti(instr, 0)),
        C::Fdiv_m32fp => (Opc::Div, M32, 0),
        C::Fdiv_m64fp => (Opc::Div, M64, 0),
        C::Fidiv_m16int => (Opc::Div, I16, 0),
        C::Fidiv_m32int => (Opc::Div, I32, 0),
        C::Fdiv_st0_sti => (Opc::Div, St, sti(instr, 1)),
        C::Fdiv_sti_st0 => (Opc::Div, StRev, sti(instr, 0)),
        C::Fdivp_sti_st0 => (Opc::Div, StPop, sti(instr, 0)),
        C::Fdivr_m32fp => (Opc::DivR, M32, 0),
        C::Fdivr_m64fp => (Opc::DivR, M64, 0),
        C::Fidivr_m16int => (Opc::DivR, I16, 0),
        C::Fidivr_m32int => (Opc::DivR, I32, 0),
        C::Fdivr_st0_sti => (Opc::DivR, St, sti(instr, 1)),
        C::Fdivr_sti_st0 => (Opc::DivR, StRev, sti(instr, 0)),
        C::Fdivrp_sti_st0 => (Opc::DivR, StPop, sti(instr, 0)),
        // Comparisons.
        C::Fcom_m32fp => (Opc::Com, M32, 0),
        C::Fcom_m64fp => (Opc::Com, M64, 0),
        C::Ficom_m16int => (Opc::Com, I16, 0),
        C::Ficom_m32int => (Opc::Com, I32, 0),
        C::Fcom_st0_sti | C::Fcom_st0_sti_DCD0 => (Opc::Com, St, sti(instr, 1)),
        C::Fcomp_m32fp => (Opc::ComP, M32, 0),
        C::Fcomp_m64fp => (Opc::ComP, M64, 0),
        C::Ficomp_m16int => (Opc::ComP, I16, 0),
        C::Ficomp_m32int => (Opc::ComP, I32, 0),
        C::Fcomp_st0_sti | C::Fcomp_st0_sti_DCD8 => (Opc::ComP, St, sti(instr, 1)),
        C::Fcompp => (Opc::ComPP, None, 1),
        C::Fucom_st0_sti => (Opc::UCom, St, sti(instr, 1)),
        C::Fucomp_st0_sti => (Opc::UComP, St, sti(instr, 1)),
        C::Fucompp => (Opc::UComPP, None, 1),
        C::Fcomi_st0_sti => (Opc::ComI, St, sti(instr, 1)),
        C::Fcomip_st0_sti => (Opc::ComIP, St, sti(instr, 1)),
        C::Fucomi_st0_sti => (Opc::UComI, St, sti(instr, 1)),
        C::Fucomip_st0_sti => (Opc::UComIP, St, sti(instr, 1)),
        C::Ftst => (Opc::Tst, None, 0),
        C::Fxam => (Opc::Xam, None, 0),
        // Loads.
        C::Fld_m32fp => (Opc::Ld, M32, 0),
        C::Fld_m64fp => (Opc::Ld, M64, 0),
        C::Fld_m80fp => (Opc::Ld, M80, 0),
        C::Fild_m16int => (Opc::Ld, I16, 0),
        C::Fild_m32int => (Opc::Ld, I32, 0),
        C::Fild_m64int => (Opc::Ld, I64, 0),
        C::Fld_sti => (Opc::Ld, St, sti(instr, 0)),
        C::Fld1 => (Opc::Ld1, None, 0),
        C::Fldz => (Opc::LdZ, None, 0),
        C::Fldl2t => (Opc::LdL2T, None, 0),
        C::Fldl2e => (Opc::LdL2E, None, 0),
        C::Fldpi => (Opc::LdPi, None, 0),
        C::Fldlg2 => (Opc::LdLg2, None, 0),
        C::Fldln2 => (Opc::LdLn2, None, 0),
        // Stores.
        C::Fst_m32fp => (Opc::St, M32, 0),
        C::Fst_m64fp => (Opc::St, M64, 0),
        C::Fst_sti => (Opc::St, St, sti(instr, 0)),
        C::Fstp_m32fp => (Opc::StP, M32, 0),
        C::Fstp_m64fp => (Opc::StP, M64, 0),
        C::Fstp_m80fp => (Opc::StP, M80, 0),
        C::Fstp_sti | C::Fstp_sti_DFD0 | C::Fstp_sti_DFD8 | C::Fstpnce_sti => (Opc::StP, St, sti(instr, 0)),
        C::Fist_m16int => (Opc::Ist, I16, 0),
        C::Fist_m32int => (Opc::Ist, I32, 0),
        C::Fistp_m16int => (Opc::IstP, I16, 0),
        C::Fistp_m32int => (Opc::IstP, I32, 0),
        C::Fistp_m64int => (Opc::IstP, I64, 0),
        C::Fisttp_m16int => (Opc::IsttP, I16, 0),
        C::Fisttp_m32int => (Opc::IsttP, I32, 0),
        C::Fisttp_m64int => (Opc::IsttP, I64, 0),
        // One-operand operations.
        C::Fchs => (Opc::Chs, None, 0),
        C::Fabs => (Opc::Abs, None, 0),
        C::Fsqrt => (Opc::Sqrt, None, 0),
        C::Frndint => (Opc::Rndint, None, 0),
        C::Fscale => (Opc::Scale, None, 0),
        C::Fprem => (Opc::Prem, None, 0),
        C::Fprem1 => (Opc::Prem1, None, 0),
        C::Fxtract => (Opc::Xtract, None, 0),
        C::F2xm1 => (Opc::F2xm1, None, 0),
        C::Fyl2x => (Opc::Yl2x, None, 1),
        C::Fyl2xp1 => (Opc::Yl2xp1, None, 1),
        C::Fpatan => (Opc::Patan, None, 1),
        C::Fsin => (Opc::Sin, None, 0),
        C::Fcos => (Opc::Cos, None, 0),
        C::Fsincos => (Opc::SinCos, None, 0),
        C::Fptan => (Opc::Ptan, None, 0),
        // Stack and control.
        C::Fxch_st0_sti | C::Fxch_st0_sti_DDC8 | C::Fxch_st0_sti_DFC8 => (Opc::Xch, St, sti(instr, 1)),
        C::Ffree_sti => (Opc::Free, St, sti(instr, 0)),
        C::Ffreep_sti => (Opc::FreeP, St, sti(instr, 0)),
        C::Fincstp => (Opc::IncStp, None, 0),
        C::Fdecstp => (Opc::DecStp, None, 0),
        C::Fninit | C::Finit => (Opc::Init, None, 0),
        C::Fnclex | C::Fclex => (Opc::Clex, None, 0),
        C::Fnop | C::Wait => (Opc::Nop, None, 0),
        C::Fnstsw_AX | C::Fstsw_AX => (Opc::Stsw, Ax, 0),
        C::Fnstsw_m2byte | C::Fstsw_m2byte => (Opc::Stsw, M16, 0),
        C::Fnstcw_m2byte | C::Fstcw_m2byte => (Opc::Stcw, M16, 0),
        C::Fldcw_m2byte => (Opc::Ldcw, M16, 0),
        C::Fnstenv_m28byte | C::Fstenv_m28byte => (Opc::Stenv, None, 0),
        C::Fldenv_m28byte => (Opc::Ldenv, None, 0),
        C::Fnsave_m108byte | C::Fsave_m108byte => (Opc::Save, None, 0),
        C::Frstor_m108byte => (Opc::Rstor, None, 0),
        C::Fxsave_m512byte | C::Fxsave64_m512byte => (Opc::Fxsave, None, 0),
        C::Fxrstor_m512byte | C::Fxrstor64_m512byte => (Opc::Fxrstor, None, 0),
        C::Xsave_mem | C::Xsave64_mem | C::Xsaveopt_mem | C::Xsaveopt64_mem => (Opc::Xsave, None, 0),
        C::Xsavec_mem | C::Xsavec64_mem => (Opc::Xsavec, None, 0),
        C::Xrstor_mem | C::Xrstor64_mem => (Opc::Xrstor, None, 0),
        C::Fbld_m80bcd => (Opc::Bld, None, 0),
        C::Fbstp_m80bcd => (Opc::Bstp, None, 0),
        C::Fcmovb_st0_sti => (Opc::CmovB, St, sti(instr, 1)),
        C::Fcmove_st0_sti => (Opc::CmovE, St, sti(instr, 1)),
        C::Fcmovbe_st0_sti => (Opc::CmovBe, St, sti(instr, 1)),
        C::Fcmovu_st0_sti => (Opc::CmovU, St, sti(instr, 1)),
        C::Fcmovnb_st0_sti => (Opc::CmovNb, St, sti(instr, 1)),
        C::Fcmovne_st0_sti => (Opc::CmovNe, St, sti(instr, 1)),
        C::Fcmovnbe_st0_sti => (Opc::CmovNbe, St, sti(instr, 1)),
        C::Fcmovnu_st0_sti => (Opc::CmovNu, St, sti(instr, 1)),
        _ => return Option::None,
    };
    Some(X87Op::new(opc, kind, i).encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn op_of(bytes: &[u8]) -> Option<X87Op> {
        let ins = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE).decode();
        x87_op(ins.code(), &ins).and_then(X87Op::decode)
    }

    #[test]
    fn register_operands_and_directions() {
        // d8 c3: fadd st(0), st(3)
        assert_eq!(op_of(&[0xd8, 0xc3]), Some(X87Op::new(Opc::Add, Kind::St, 3)));
        // dc eb: fsub st(3), st(0) — st(3) = st(3) - st(0)
        assert_eq!(op_of(&[0xdc, 0xeb]), Some(X87Op::new(Opc::Sub, Kind::StRev, 3)));
        // de e9: fsubp st(1), st(0)
        assert_eq!(op_of(&[0xde, 0xe9]), Some(X87Op::new(Opc::Sub, Kind::StPop, 1)));
        // db 2f: fld tword [rdi]
        assert_eq!(op_of(&[0xdb, 0x2f]), Some(X87Op::new(Opc::Ld, Kind::M80, 0)));
        // df e0: fnstsw ax
        assert_eq!(op_of(&[0xdf, 0xe0]), Some(X87Op::new(Opc::Stsw, Kind::Ax, 0)));
        // db f1: fcomi st(0), st(1)
        assert_eq!(op_of(&[0xdb, 0xf1]), Some(X87Op::new(Opc::ComI, Kind::St, 1)));
        // d9 f3: fpatan, st(1) = atan(st(1) / st(0))
        assert_eq!(op_of(&[0xd9, 0xf3]), Some(X87Op::new(Opc::Patan, Kind::None, 1)));
        // 66 dd 36: fnsave with the 94-byte (16-bit) layout is not implemented
        assert_eq!(op_of(&[0x66, 0xdd, 0x36]), None);
    }
}
