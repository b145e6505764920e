//! Differential-test harness: run one x86-64 instruction natively and through
//! `lift_block` + the IR interpreter on the same inputs, and compare.
//!
//! The native side maps one RWX region holding a trampoline, a context block, a data page
//! and a stack page. The trampoline saves the host's callee-saved registers and x87/SSE
//! state, loads GPRs, RFLAGS and the whole FXSAVE image (x87, MXCSR, xmm) from the context
//! with RIP-relative addressing (so no register is reserved), runs the instruction bytes,
//! stores everything back and returns. The interpreter side sees the same addresses: its
//! `SparseMemory` maps the data and stack pages with the same contents.
#![allow(dead_code)]

use std::sync::Mutex;

use hcontainer_abi::flags::{bits, materialize, CcOp};
use hcontainer_abi::{GuestState, X87Reg};
use hcontainer_ir::interp::{run_block, Exit, Memory, SparseMemory, StepClock};
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, RflagsBits};

const CODE: u64 = 0;
const CTX: u64 = 0x1000;
const DATA: u64 = 0x2000;
const STACK: u64 = 0x3000;
const REGION: u64 = 0x4000;
/// Offsets in the context page.
const C_GPR: u64 = 0;
const C_FLAGS: u64 = 128;
const C_HOSTRSP: u64 = 136;
const C_FX: u64 = 256;
const C_HOSTFX: u64 = 768;
/// Where the instruction under test starts in the trampoline (fixed so RIP-relative operands
/// and branch targets are the same on every run of a form).
const INSN_AT: u64 = 0x200;
/// Guest rsp: the middle of the stack page.
pub const STACK_OFF: u64 = 0x800;

/// Guest data page size and stack page size.
pub const PAGE: usize = 4096;

/// Inputs and outputs of one run: registers, RFLAGS, the FXSAVE image, data and stack pages.
#[derive(Clone)]
pub struct Machine {
    pub gpr: [u64; 16],
    pub rflags: u64,
    pub fx: [u8; 512],
    pub data: Vec<u8>,
    pub stack: Vec<u8>,
}

impl Machine {
    pub fn new() -> Machine {
        let mut fx = [0u8; 512];
        fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        Machine { gpr: [0; 16], rflags: 0x202, fx, data: vec![0; PAGE], stack: vec![0; PAGE] }
    }
    pub fn xmm(&self, i: usize) -> [u8; 16] {
        let mut r = [0u8; 16];
        r.copy_from_slice(&self.fx[160 + 16 * i..176 + 16 * i]);
        r
    }
    pub fn set_xmm(&mut self, i: usize, v: [u8; 16]) {
        self.fx[160 + 16 * i..176 + 16 * i].copy_from_slice(&v);
    }
    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes([self.fx[24], self.fx[25], self.fx[26], self.fx[27]])
    }
    pub fn set_mxcsr(&mut self, v: u32) {
        self.fx[24..28].copy_from_slice(&v.to_le_bytes());
    }
    pub fn fcw(&self) -> u16 {
        u16::from_le_bytes([self.fx[0], self.fx[1]])
    }
    pub fn set_fcw(&mut self, v: u16) {
        self.fx[0..2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn fsw(&self) -> u16 {
        u16::from_le_bytes([self.fx[2], self.fx[3]])
    }
    pub fn set_fsw(&mut self, v: u16) {
        self.fx[2..4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn ftw(&self) -> u8 {
        self.fx[4]
    }
    pub fn set_ftw(&mut self, v: u8) {
        self.fx[4] = v;
    }
    /// ST(i) as 10 bytes.
    pub fn st(&self, i: usize) -> [u8; 10] {
        let mut r = [0u8; 10];
        r.copy_from_slice(&self.fx[32 + 16 * i..42 + 16 * i]);
        r
    }
    pub fn set_st(&mut self, i: usize, v: [u8; 10]) {
        self.fx[32 + 16 * i..42 + 16 * i].copy_from_slice(&v);
        self.fx[42 + 16 * i..48 + 16 * i].fill(0);
    }
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

/// The native executor: one RWX region and its trampoline.
pub struct Native {
    base: u64,
    insn_len: usize,
    insn: Vec<u8>,
}

// SAFETY: `base` is a private mapping used only under the NATIVE mutex.
unsafe impl Send for Native {}

static NATIVE: Mutex<Option<Native>> = Mutex::new(None);

fn mmap_rwx(len: u64) -> u64 {
    let ret: i64;
    // SAFETY: mmap(NULL, len, RWX, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) creates a new mapping
    // and touches no existing memory; rcx and r11 are clobbered by `syscall`.
    unsafe {
        std::arch::asm!("syscall", inlateout("rax") 9i64 => ret, in("rdi") 0u64, in("rsi") len, in("rdx") 7u64,
            in("r10") 0x22u64, in("r8") -1i64, in("r9") 0u64, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    assert!(ret > 0 && ret % 4096 == 0, "mmap of the test region failed: {ret}");
    ret as u64
}

struct Asm {
    base: u64,
    code: Vec<u8>,
}

impl Asm {
    /// Emit `head` (opcode bytes ending in a ModRM with mod=00 rm=101), a disp32 to
    /// `base + target`, then `tail`.
    fn riprel(&mut self, head: &[u8], target: u64, tail: &[u8]) {
        self.code.extend_from_slice(head);
        let next = self.base + self.code.len() as u64 + 4 + tail.len() as u64;
        let disp = (self.base + target).wrapping_sub(next) as i64;
        let d = i32::try_from(disp).expect("context is near the code");
        self.code.extend_from_slice(&d.to_le_bytes());
        self.code.extend_from_slice(tail);
    }
    fn raw(&mut self, b: &[u8]) {
        self.code.extend_from_slice(b);
    }
}

impl Native {
    fn new() -> Native {
        Native { base: mmap_rwx(REGION), insn_len: 0, insn: Vec::new() }
    }

    /// Build the trampoline around `insn`; `tail` runs after it (for branch tests).
    fn build(&mut self, insn: &[u8]) {
        let mut a = Asm { base: self.base, code: Vec::new() };
        // Callee-saved registers.
        a.raw(&[0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57]);
        a.riprel(&[0x48, 0x89, 0x25], CTX + C_HOSTRSP, &[]); // mov [hostrsp], rsp
        a.riprel(&[0x48, 0x0f, 0xae, 0x05], CTX + C_HOSTFX, &[]); // fxsave64 [hostfx]
        a.riprel(&[0x48, 0x0f, 0xae, 0x0d], CTX + C_FX, &[]); // fxrstor64 [fx]
        a.riprel(&[0x48, 0x8b, 0x25], CTX + C_GPR + 32, &[]); // mov rsp, [gpr.rsp]
        a.riprel(&[0xff, 0x35], CTX + C_FLAGS, &[]); // push qword [flags]
        a.raw(&[0x9d]); // popfq
        for r in 0..16u8 {
            if r == 4 {
                continue;
            }
            let rex = 0x48 | if r >= 8 { 4 } else { 0 };
            a.riprel(&[rex, 0x8b, ((r & 7) << 3) | 5], CTX + C_GPR + 8 * u64::from(r), &[]);
        }
        // Pad to INSN_AT with nops.
        assert!(a.code.len() as u64 <= INSN_AT);
        while (a.code.len() as u64) < INSN_AT {
            a.raw(&[0x90]);
        }
        a.raw(insn);
        // Branch tests: the fall-through and taken paths both arrive here; the instruction
        // under test is followed directly by the store sequence.
        for r in 0..16u8 {
            let rex = 0x48 | if r >= 8 { 4 } else { 0 };
            a.riprel(&[rex, 0x89, ((r & 7) << 3) | 5], CTX + C_GPR + 8 * u64::from(r), &[]);
        }
        a.raw(&[0x9c]); // pushfq
        a.riprel(&[0x8f, 0x05], CTX + C_FLAGS, &[]); // pop qword [flags]
        a.raw(&[0xfc]); // cld
        a.riprel(&[0x48, 0x0f, 0xae, 0x05], CTX + C_FX, &[]); // fxsave64 [fx]
        a.riprel(&[0x48, 0x0f, 0xae, 0x0d], CTX + C_HOSTFX, &[]); // fxrstor64 [hostfx]
        a.riprel(&[0x48, 0x8b, 0x25], CTX + C_HOSTRSP, &[]); // mov rsp, [hostrsp]
        a.raw(&[0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3]);
        assert!(a.code.len() < CTX as usize);
        // SAFETY: the code page is ours (mapped RWX by `mmap_rwx`) and nothing runs it now.
        unsafe { std::ptr::copy_nonoverlapping(a.code.as_ptr(), (self.base + CODE) as *mut u8, a.code.len()) };
        self.insn = insn.to_vec();
        self.insn_len = insn.len();
    }

    fn run(&mut self, m: &Machine) -> Machine {
        let ctx = (self.base + CTX) as *mut u8;
        // SAFETY: the context, data and stack pages lie in our mapping; the trampoline was
        // built by `build` and follows the SysV ABI (callee-saved registers, x87/SSE state,
        // DF and the stack pointer are restored before `ret`). The instruction under test
        // only touches registers and the data/stack pages (the caller's inputs keep its
        // memory operands there).
        unsafe {
            for (i, g) in m.gpr.iter().enumerate() {
                std::ptr::write_unaligned(ctx.add(C_GPR as usize + 8 * i).cast::<u64>(), *g);
            }
            std::ptr::write_unaligned(ctx.add(C_FLAGS as usize).cast::<u64>(), m.rflags);
            std::ptr::copy_nonoverlapping(m.fx.as_ptr(), ctx.add(C_FX as usize), 512);
            std::ptr::copy_nonoverlapping(m.data.as_ptr(), (self.base + DATA) as *mut u8, PAGE);
            std::ptr::copy_nonoverlapping(m.stack.as_ptr(), (self.base + STACK) as *mut u8, PAGE);
            let f: extern "sysv64" fn() = std::mem::transmute::<u64, extern "sysv64" fn()>(self.base + CODE);
            f();
            let mut out = Machine::new();
            for (i, g) in out.gpr.iter_mut().enumerate() {
                *g = std::ptr::read_unaligned(ctx.add(C_GPR as usize + 8 * i).cast::<u64>());
            }
            out.rflags = std::ptr::read_unaligned(ctx.add(C_FLAGS as usize).cast::<u64>());
            std::ptr::copy_nonoverlapping(ctx.add(C_FX as usize), out.fx.as_mut_ptr(), 512);
            std::ptr::copy_nonoverlapping((self.base + DATA) as *const u8, out.data.as_mut_ptr(), PAGE);
            std::ptr::copy_nonoverlapping((self.base + STACK) as *const u8, out.stack.as_mut_ptr(), PAGE);
            out
        }
    }
}

/// Addresses of the region, for building inputs (memory operands, stack pointer).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub insn: u64,
    pub data: u64,
    pub stack: u64,
}

/// The guest state the interpreter starts from for machine `m`.
fn to_state(m: &Machine, rip: u64) -> GuestState {
    let mut s = GuestState::new();
    s.gpr = m.gpr;
    s.rip = rip;
    s.cc_op = CcOp::Eflags.with_size(8);
    s.cc_dst = m.rflags & bits::ARITH;
    s.rflags_other = m.rflags & !bits::ARITH;
    for i in 0..16 {
        s.xmm[i] = m.xmm(i);
    }
    s.mxcsr = m.mxcsr();
    s.fpu_cw = m.fcw();
    let fsw = m.fsw();
    s.fpu_top = u32::from((fsw >> 11) & 7);
    s.fpu_sw = fsw & !0x3800;
    s.fpu_tag = u32::from(m.ftw());
    for i in 0..8 {
        let phys = (s.fpu_top as usize + i) & 7;
        let mut r = X87Reg::default();
        r.bytes[..10].copy_from_slice(&m.st(i));
        s.fpu_regs[phys] = r;
    }
    s
}

fn from_state(s: &GuestState, mem: &mut SparseMemory, lay: Layout) -> Machine {
    let mut m = Machine::new();
    m.gpr = s.gpr;
    m.rflags = materialize(s.cc_op, s.cc_dst, s.cc_src1, s.cc_src2) | s.rflags_other;
    for i in 0..16 {
        m.set_xmm(i, s.xmm[i]);
    }
    m.set_mxcsr(s.mxcsr);
    m.set_fcw(s.fpu_cw);
    m.set_fsw((s.fpu_sw & !0x3800) | (((s.fpu_top & 7) as u16) << 11));
    m.set_ftw(s.fpu_tag as u8);
    for i in 0..8 {
        let phys = (s.fpu_top as usize + i) & 7;
        let mut b = [0u8; 10];
        b.copy_from_slice(&s.fpu_regs[phys].bytes[..10]);
        m.set_st(i, b);
    }
    mem.read(lay.data, &mut m.data).expect("data page is mapped");
    mem.read(lay.stack, &mut m.stack).expect("stack page is mapped");
    m
}

/// RFLAGS bits (x86 positions) that `ins` leaves architecturally undefined.
pub fn undefined_flags(ins: &Instruction) -> u64 {
    let u = ins.rflags_undefined();
    let mut r = 0;
    for (iced, x86) in [
        (RflagsBits::OF, bits::OF),
        (RflagsBits::SF, bits::SF),
        (RflagsBits::ZF, bits::ZF),
        (RflagsBits::AF, bits::AF),
        (RflagsBits::CF, bits::CF),
        (RflagsBits::PF, bits::PF),
    ] {
        if u & iced != 0 {
            r |= x86;
        }
    }
    r
}

/// The position of a finite 80-bit value among the values of its sign (consecutive values,
/// consecutive ordinals); the sign and the ordinal of infinities and NaNs keep them apart.
fn ext_ordinal(b: [u8; 10]) -> i128 {
    let mant = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let se = u16::from_le_bytes([b[8], b[9]]);
    let exp = i128::from(se & 0x7fff);
    let mag = if exp == 0 { i128::from(mant) } else { (exp << 63) | i128::from(mant & !(1 << 63)) };
    let mag = if exp == 0x7fff { mag + (1 << 80) } else { mag };
    if se & 0x8000 != 0 {
        -mag - (1 << 90)
    } else {
        mag
    }
}

/// What to compare besides GPRs, RFLAGS (defined bits), data and stack pages.
#[derive(Clone, Copy, Debug, Default)]
pub struct Compare {
    /// Compare xmm0..xmm15.
    pub xmm: bool,
    /// Compare the x87 state (status word, tags, registers) and MXCSR control bits.
    pub x87: bool,
    /// Compare MXCSR exception flags too.
    pub mxcsr_flags: bool,
    /// Mask of x87 status word bits to compare.
    pub fsw_mask: u16,
    /// Accept x87 register values one unit in the last place apart, and any C1 (for
    /// the transcendental instructions, whose hardware results are not correctly rounded).
    pub x87_one_ulp: bool,
    /// Compare C1 only after an exact result (the hardware's PE clear): after an inexact
    /// one it tells which way the hardware rounded its own approximation, which differs
    /// between vendors (AMD and Intel do, on f2xm1(1) and fsincos(±16)).
    pub c1_exact_only: bool,
    /// Accept a lift to an "unsupported instruction" trap (a clear error, not a wrong
    /// result) for forms the lifter may not implement yet; `check` then reports `Unsupported`.
    pub allow_unsupported: bool,
}

/// The prefix of the error `check` returns for an accepted unsupported-instruction trap.
pub const UNSUPPORTED: &str = "unsupported: ";

/// One test case's outcome for reporting.
pub struct Mismatch {
    pub what: String,
}

pub fn disasm(bytes: &[u8], ip: u64) -> (Instruction, String) {
    let ins = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE).decode();
    let mut s = String::new();
    IntelFormatter::new().format(&ins, &mut s);
    (ins, s)
}

/// Decode a sequence of instructions: the first one (for its undefined flags) and the text
/// of all, or an error if the bytes do not decode exactly.
pub fn disasm_all(bytes: &[u8], ip: u64) -> Result<(Instruction, String), String> {
    let mut d = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let mut texts = Vec::new();
    let mut first = None;
    while d.can_decode() {
        let ins = d.decode();
        if ins.is_invalid() {
            return Err(format!("bytes {bytes:02x?} do not decode"));
        }
        let mut s = String::new();
        IntelFormatter::new().format(&ins, &mut s);
        texts.push(s);
        first.get_or_insert(ins);
    }
    let first = first.ok_or_else(|| String::from("no instruction"))?;
    Ok((first, texts.join("; ")))
}

/// Run `insn` on `input` natively and in the interpreter; `extra_undef` adds RFLAGS bits
/// not to compare for this input. Returns a description of the first difference.
pub fn check(insn: &[u8], input: &Machine, cmp: Compare, extra_undef: u64) -> Result<(), String> {
    let mut guard = NATIVE.lock().unwrap_or_else(|e| e.into_inner());
    let native = guard.get_or_insert_with(Native::new);
    if native.insn != insn {
        native.build(insn);
    }
    let lay = Layout { insn: native.base + INSN_AT, data: native.base + DATA, stack: native.base + STACK };
    let mut input = input.clone();
    let rsp = input.gpr[4];
    if rsp >= lay.stack + 8 && rsp <= lay.stack + PAGE as u64 {
        // The trampoline loads RFLAGS through the 8 bytes below the initial rsp.
        let o = (rsp - lay.stack) as usize;
        input.stack[o - 8..o].copy_from_slice(&input.rflags.to_le_bytes());
    }
    let input = &input;
    let out_n = native.run(input);
    drop(guard);

    let (ins, text) = disasm_all(insn, lay.insn)?;
    let block = hcontainer_x86::lift::lift_block(insn, lay.insn, &|_| false);
    let mut mem = SparseMemory::new();
    mem.map(lay.data, PAGE as u64);
    mem.map(lay.stack, PAGE as u64);
    mem.write(lay.data, &input.data).expect("mapped");
    mem.write(lay.stack, &input.stack).expect("mapped");
    let mut st = to_state(input, lay.insn);
    let exit = run_block(&block, &mut st, &mut mem, &mut StepClock::default())
        .map_err(|e| format!("{text}: interpreter error {e}\n{block}"))?;
    let next = lay.insn + insn.len() as u64;
    let native_next = next; // branch forms compare their exit separately (see check_branch)
    match exit {
        Exit::Jump(a) if a == native_next => {}
        Exit::Trap { what, .. } if cmp.allow_unsupported && what.contains("unsupported") => {
            return Err(format!("{UNSUPPORTED}{text}: {what}"))
        }
        Exit::Trap { what, .. } => return Err(format!("{text}: lifted to a trap: {what}")),
        e => return Err(format!("{text}: exit {e:?}, expected Jump({native_next:#x})")),
    }
    let mut out_i = from_state(&st, &mut mem, lay);
    let mut out_n = out_n;
    // The trampoline's own pushfq wrote the 8 bytes below the final rsp natively.
    let rsp = out_n.gpr[4];
    if rsp >= lay.stack + 8 && rsp <= lay.stack + PAGE as u64 {
        let o = (rsp - lay.stack) as usize;
        out_n.stack[o - 8..o].fill(0);
        out_i.stack[o - 8..o].fill(0);
    }
    compare(&text, &block, input, &out_n, &out_i, cmp, undefined_flags(&ins) | extra_undef)
}

/// Run a conditional branch: natively, whether it was taken is read from rax (the taken
/// path and fall-through path are built as `jcc +2; mov al, 0 …`); compared with the
/// interpreter's exit. Returns `Ok(taken)`.
pub fn check_branch(jcc: u8, input: &Machine) -> Result<bool, String> {
    // jcc rel8=+2 ; xor eax,eax (31 c0) ; [taken lands here] — rax is 0 when not taken,
    // its input (non-zero) when taken. xor changes flags, so flags are not compared.
    let insn = [0x70 | jcc, 0x02, 0x31, 0xc0];
    let mut inp = input.clone();
    inp.gpr[0] |= 1;
    let mut guard = NATIVE.lock().unwrap_or_else(|e| e.into_inner());
    let native = guard.get_or_insert_with(Native::new);
    if native.insn != insn {
        native.build(&insn);
    }
    let at = native.base + INSN_AT;
    let out = native.run(&inp);
    drop(guard);
    let taken_native = out.gpr[0] != 0;
    let block = hcontainer_x86::lift::lift_block(&insn[..2], at, &|_| false);
    let mut mem = SparseMemory::new();
    let mut st = to_state(&inp, at);
    let exit = run_block(&block, &mut st, &mut mem, &mut StepClock::default()).map_err(|e| e.to_string())?;
    let taken_interp = match exit {
        Exit::Jump(a) if a == at + 4 => true,
        Exit::Jump(a) if a == at + 2 => false,
        e => return Err(format!("jcc {jcc}: exit {e:?}")),
    };
    if taken_interp != taken_native {
        return Err(format!(
            "j{jcc:x} with rflags {:#x}: native taken={taken_native}, interpreter taken={taken_interp}\n{block}",
            inp.rflags
        ));
    }
    Ok(taken_native)
}

fn compare(
    text: &str,
    block: &hcontainer_ir::Block,
    input: &Machine,
    n: &Machine,
    i: &Machine,
    cmp: Compare,
    undef: u64,
) -> Result<(), String> {
    let mut diffs = Vec::new();
    const NAMES: [&str; 16] =
        ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];
    for r in 0..16 {
        if n.gpr[r] != i.gpr[r] {
            diffs.push(format!("{}: native {:#x}, interp {:#x}", NAMES[r], n.gpr[r], i.gpr[r]));
        }
    }
    let fmask = (bits::ARITH & !undef) | bits::DF;
    if (n.rflags ^ i.rflags) & fmask != 0 {
        diffs.push(format!(
            "rflags: native {:#x}, interp {:#x} (compared bits {fmask:#x})",
            n.rflags & fmask,
            i.rflags & fmask
        ));
    }
    if cmp.xmm {
        for r in 0..16 {
            if n.xmm(r) != i.xmm(r) {
                diffs.push(format!("xmm{r}: native {:02x?}, interp {:02x?}", n.xmm(r), i.xmm(r)));
            }
        }
        let mm = if cmp.mxcsr_flags { !0 } else { !0x3f };
        if (n.mxcsr() ^ i.mxcsr()) & mm != 0 {
            diffs.push(format!("mxcsr: native {:#x}, interp {:#x}", n.mxcsr(), i.mxcsr()));
        }
    }
    if cmp.x87 {
        let inexact = n.fsw() & (1 << 5) != 0;
        let c1 = if cmp.x87_one_ulp || (cmp.c1_exact_only && inexact) { 1 << 9 } else { 0 };
        if (n.fsw() ^ i.fsw()) & cmp.fsw_mask & !c1 != 0 {
            diffs.push(format!("fsw: native {:#06x}, interp {:#06x}", n.fsw(), i.fsw()));
        }
        if n.ftw() != i.ftw() {
            diffs.push(format!("ftw: native {:#04x}, interp {:#04x}", n.ftw(), i.ftw()));
        }
        if n.fcw() != i.fcw() {
            diffs.push(format!("fcw: native {:#06x}, interp {:#06x}", n.fcw(), i.fcw()));
        }
        for r in 0..8 {
            // Empty registers hold whatever; compare valid ones.
            let phys = ((n.fsw() >> 11) as usize + r) & 7;
            let near = cmp.x87_one_ulp && ext_ordinal(n.st(r)).abs_diff(ext_ordinal(i.st(r))) <= 1;
            if n.ftw() & (1 << phys) != 0 && n.st(r) != i.st(r) && !near {
                diffs.push(format!("st({r}): native {:02x?}, interp {:02x?}", n.st(r), i.st(r)));
            }
        }
    }
    for (k, (a, b)) in n.data.iter().zip(&i.data).enumerate() {
        if a != b {
            diffs.push(format!("data+{k:#x}: native {a:#04x}, interp {b:#04x}"));
            break;
        }
    }
    for (k, (a, b)) in n.stack.iter().zip(&i.stack).enumerate() {
        if a != b {
            diffs.push(format!("stack+{k:#x}: native {a:#04x}, interp {b:#04x}"));
            break;
        }
    }
    if diffs.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{text}\n  input: gpr {:x?} rflags {:#x}\n  {}\n{block}",
        input.gpr,
        input.rflags,
        diffs.join("\n  ")
    ))
}

/// Run `insn` natively only (no lifting), e.g. to check flag formulas against hardware.
pub fn run_native(insn: &[u8], input: &Machine) -> Machine {
    let mut guard = NATIVE.lock().unwrap_or_else(|e| e.into_inner());
    let native = guard.get_or_insert_with(Native::new);
    if native.insn != insn {
        native.build(insn);
    }
    native.run(input)
}

/// Layout of the native region (for memory operands and rsp), creating it if needed.
pub fn layout() -> Layout {
    let mut guard = NATIVE.lock().unwrap_or_else(|e| e.into_inner());
    let native = guard.get_or_insert_with(Native::new);
    Layout { insn: native.base + INSN_AT, data: native.base + DATA, stack: native.base + STACK }
}

/// A small deterministic PRNG (xorshift64*), biased towards edge values.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A value that is often an edge case at some width.
    pub fn value(&mut self) -> u64 {
        const EDGES: [u64; 12] = [
            0,
            1,
            2,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0x8000,
            0x7fff_ffff,
            0x8000_0000,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0000,
        ];
        match self.below(8) {
            0 => EDGES[self.below(EDGES.len() as u64) as usize],
            1 => EDGES[self.below(EDGES.len() as u64) as usize].wrapping_neg(),
            2 => self.below(70),
            3 => self.next() | EDGES[self.below(EDGES.len() as u64) as usize],
            _ => self.next(),
        }
    }
    pub fn bytes(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.value().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// A random machine: GPRs (rsp fixed at the stack), arithmetic flags and DF, xmm, data.
pub fn random_machine(rng: &mut Rng, lay: Layout) -> Machine {
    let mut m = Machine::new();
    for g in m.gpr.iter_mut() {
        *g = rng.value();
    }
    m.gpr[4] = lay.stack + STACK_OFF;
    m.rflags = 0x202 | (rng.next() & (bits::ARITH | bits::DF));
    for i in 0..16 {
        let mut x = [0u8; 16];
        rng.bytes(&mut x);
        m.set_xmm(i, x);
    }
    rng.bytes(&mut m.data);
    rng.bytes(&mut m.stack);
    m
}
