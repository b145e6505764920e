//! Lifting x86-64 instructions to the semantic IR.
//!
//! [`lift_block`] turns the bytes at one address into one IR [`Block`]; [`lift_program`]
//! lifts every function of a [`CodeMap`] into a closed [`Program`]: every direct successor
//! of every block is a block start of some function, and a call's return address is a block
//! of the calling function.
//!
//! Two constructs need blocks at addresses that are not instruction boundaries (one byte
//! into their instruction, which is never a boundary): the divide-error trap of `div`/`idiv`
//! and the loop body of a `rep` string instruction. [`lift_blocks`] returns them along with
//! the main block.

mod atomic;
mod builder;
mod dead;
mod int;
mod lanes;
mod sse;
pub mod x87;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::discover::CodeMap;
use crate::guest::{GuestBinary, GuestError};
use builder::Lifter;
use hcontainer_abi::flags::bits::ARITH;
use hcontainer_ir::{Block, CallTarget, Function, Program, Terminator};
use hcontainer_semantics::Helper;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};

/// Outcome of lifting one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Continue with the next instruction.
    Continue,
    /// The instruction set the block's terminator.
    End,
}

/// Counts from [`lift_program`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiftStats {
    /// Functions in the program (including ones created for jump targets).
    pub functions: usize,
    /// Blocks in all functions.
    pub blocks: usize,
    /// Guest instructions lifted (summed over blocks).
    pub instructions: usize,
    /// Distinct addresses of instructions that could not be lifted (unsupported or invalid);
    /// their blocks end in [`Terminator::Trap`].
    pub traps: usize,
    /// Some of them: address and description.
    pub trap_examples: Vec<(u64, String)>,
}

/// The result of lifting at one address.
struct Lifted {
    main: Block,
    extra: Vec<Block>,
    /// Set when the block ends at an instruction that could not be lifted.
    unsupported: Option<(u64, String)>,
}

/// Lift one block starting at `addr` from `code` (the bytes at `addr`), stopping at a
/// control transfer, at `is_leader(a)` for `a != addr`, or at the end of `code`.
pub fn lift_block(code: &[u8], addr: u64, is_leader: &dyn Fn(u64) -> bool) -> Block {
    lift_at(code, addr, is_leader, ARITH).main
}

/// As [`lift_block`], followed by the blocks it created inside its last instruction (the
/// divide-error trap of `div`/`idiv`, the loop body of a `rep` string instruction).
pub fn lift_blocks(code: &[u8], addr: u64, is_leader: &dyn Fn(u64) -> bool) -> Vec<Block> {
    let l = lift_at(code, addr, is_leader, ARITH);
    let mut v = vec![l.main];
    v.extend(l.extra);
    v
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

/// `end_live`: the arithmetic flags (abi bits) that may be read after the block's end.
fn lift_at(code: &[u8], addr: u64, is_leader: &dyn Fn(u64) -> bool, end_live: u64) -> Lifted {
    let mut l = Lifter::new(addr);
    let mut dec = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut pos = 0usize;
    let mut unsupported = None;
    loop {
        let ip = addr.wrapping_add(pos as u64);
        if pos >= code.len() {
            l.b.term = if pos == 0 {
                Terminator::Trap { addr: ip, what: String::from("no guest code at this address") }
            } else {
                Terminator::Jump(ip)
            };
            break;
        }
        if pos > 0 && is_leader(ip) {
            l.b.term = Terminator::Jump(ip);
            break;
        }
        dec.decode_out(&mut ins);
        let len = ins.len();
        let bytes = &code[pos..(pos + len.max(1)).min(code.len())];
        if ins.is_invalid() {
            let what = format!("invalid instruction ({})", hex_bytes(&code[pos..(pos + 15).min(code.len())]));
            l.b.term = Terminator::Trap { addr: ip, what: what.clone() };
            unsupported = Some((ip, what));
            break;
        }
        let starts_block = ins.mnemonic() == Mnemonic::Syscall
            || (ins.is_string_instruction() && (ins.has_rep_prefix() || ins.has_repne_prefix()));
        if pos > 0 && starts_block {
            l.b.term = Terminator::Jump(ip);
            break;
        }
        l.live_after = if wants_liveness(&ins) {
            live_flags_after(code, pos + len, ins.next_ip(), is_leader, end_live, false)
        } else {
            hcontainer_abi::flags::bits::ARITH
        };
        l.addr_cache = None;
        let mark = l.b.insts.len();
        let extra_mark = l.extra.len();
        let r = lift_insn(&mut l, &ins);
        match r {
            Ok(step) => {
                pos += len;
                l.b.guest_len += len as u32;
                l.b.guest_insts += 1;
                if step == Step::End {
                    break;
                }
            }
            Err(int::Unsupported(why)) => {
                l.truncate(mark);
                l.extra.truncate(extra_mark);
                let feats = ins.cpuid_features();
                let feats = if feats.is_empty() {
                    String::new()
                } else {
                    format!(", needs {:?}", feats).to_lowercase()
                };
                let what = format!("{} ({}): {}{}", int::mnemonic_name(&ins), hex_bytes(bytes), why, feats);
                l.b.term = Terminator::Trap { addr: ip, what: what.clone() };
                unsupported = Some((ip, what));
                break;
            }
        }
    }
    Lifted { main: l.b, extra: l.extra, unsupported }
}

/// Instructions whose lifting is cheaper when some of their flag outputs are dead.
fn wants_liveness(ins: &Instruction) -> bool {
    use Mnemonic as M;
    matches!(
        ins.mnemonic(),
        M::Inc | M::Dec | M::Bt | M::Bts | M::Btr | M::Btc | M::Rol | M::Ror | M::Rcl | M::Rcr | M::Clc | M::Stc | M::Cmpxchg8b | M::Cmpxchg16b
            | M::Shl | M::Sal | M::Shr | M::Sar | M::Shld | M::Shrd
    )
}

/// RFLAGS bits (abi positions) of the iced-x86 `RflagsBits` in `f`.
fn arith_of_iced(f: u32) -> u64 {
    use hcontainer_abi::flags::bits;
    use iced_x86::RflagsBits as I;
    let mut r = 0;
    for (i, b) in [(I::OF, bits::OF), (I::SF, bits::SF), (I::ZF, bits::ZF), (I::AF, bits::AF), (I::CF, bits::CF), (I::PF, bits::PF)] {
        if f & i != 0 {
            r |= b;
        }
    }
    r
}

/// Arithmetic flags that may be read, in this block or after it, before the instructions
/// from `pos` (at guest address `ip`) overwrite them; `end_live` are those that may be read
/// after the block ends at a leader or a control transfer (`ARITH` when unknown). With
/// `at_start`, `ip` is the block's own start (a leader that does not end it). Conservative:
/// a flag counts as overwritten only when an instruction always writes it.
fn live_flags_after(
    code: &[u8],
    pos: usize,
    ip: u64,
    is_leader: &dyn Fn(u64) -> bool,
    end_live: u64,
    at_start: bool,
) -> u64 {
    let Some(rest) = code.get(pos..) else {
        return ARITH;
    };
    let mut dec = Decoder::with_ip(64, rest, ip, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut uncovered = ARITH;
    let mut live = 0;
    for _ in 0..16 {
        if !dec.can_decode() {
            return live | uncovered;
        }
        if is_leader(dec.ip()) && !(at_start && dec.ip() == ip) {
            return live | (uncovered & end_live);
        }
        dec.decode_out(&mut ins);
        if ins.is_invalid()
            || ins.mnemonic() == Mnemonic::Syscall
            || (ins.is_string_instruction() && (ins.has_rep_prefix() || ins.has_repne_prefix()))
        {
            return live | uncovered;
        }
        live |= arith_of_iced(ins.rflags_read()) & uncovered;
        if ins.flow_control() != iced_x86::FlowControl::Next {
            return live | (uncovered & end_live);
        }
        // Shifts and rotates by cl leave the flags alone for a zero count.
        let by_cl = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Register && ins.op_register(i) == iced_x86::Register::CL)
            && matches!(
                ins.mnemonic(),
                Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr | Mnemonic::Sar | Mnemonic::Rol | Mnemonic::Ror | Mnemonic::Rcl | Mnemonic::Rcr | Mnemonic::Shld | Mnemonic::Shrd
            );
        if !by_cl {
            // A flag left undefined may hold anything afterwards: as good as overwritten.
            uncovered &= !arith_of_iced(
                ins.rflags_written() | ins.rflags_cleared() | ins.rflags_set() | ins.rflags_undefined(),
            );
        }
        if uncovered == 0 {
            return live;
        }
    }
    live | uncovered
}

/// Arithmetic flags that may be read after the end of block `b` of a function whose blocks
/// are `blocks`, given the flags live at the start of its blocks (`live_in`, main blocks
/// only). A call to another function reads none (the SysV ABI gives the status flags no
/// role across calls); every other way out counts as reading all of them.
fn flags_live_at_end(b: &Block, blocks: &BTreeMap<u64, Block>, live_in: &HashMap<u64, u64>) -> u64 {
    let at = |a: &u64| live_in.get(a).copied().unwrap_or(ARITH);
    match &b.term {
        Terminator::Jump(a) => at(a),
        Terminator::Branch { taken, fallthrough, .. } => at(taken) | at(fallthrough),
        Terminator::Call { target: CallTarget::Direct(t), .. } if !blocks.contains_key(t) => 0,
        Terminator::Call { target: CallTarget::Indirect(_), .. } => 0,
        _ => ARITH,
    }
}

/// Re-lift the blocks of `fb` after which some flags are known dead (so that, say, a `dec`
/// ending a block need not keep the carry of the block before it): a backward liveness of
/// the arithmetic flags over the function's direct edges, at the level of guest
/// instructions, then each block whose end has dead flags lifted again with that knowledge.
fn refine_flags(bin: &GuestBinary, fb: &mut FnBuild, mains: &[u64], is_leader: &dyn Fn(u64) -> bool) {
    let mut live_in: HashMap<u64, u64> = mains.iter().map(|a| (*a, 0)).collect();
    loop {
        let mut changed = false;
        for a in mains.iter().rev() {
            let Some(b) = fb.blocks.get(a) else { continue };
            let end = flags_live_at_end(b, &fb.blocks, &live_in);
            let v = live_flags_after(code_at(bin, *a), 0, *a, is_leader, end, true);
            if live_in.get(a) != Some(&v) {
                live_in.insert(*a, v);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for a in mains {
        let Some(b) = fb.blocks.get(a) else { continue };
        let end = flags_live_at_end(b, &fb.blocks, &live_in);
        if end == ARITH {
            continue;
        }
        let lifted = lift_at(code_at(bin, *a), *a, is_leader, end);
        for x in lifted.extra {
            fb.blocks.insert(x.addr, x);
        }
        fb.blocks.insert(*a, lifted.main);
    }
}

fn lift_insn(l: &mut Lifter, ins: &Instruction) -> Result<Step, int::Unsupported> {
    if let Some(op) = x87::x87_op(ins.code(), ins) {
        let a = if (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory) {
            l.mem_addr(ins)
        } else {
            l.c64(0)
        };
        let id = l.c64(u64::from(op));
        // x87 helpers may write ax (fnstsw) and the flags (fcomi); fxrstor the xmm registers
        // and mxcsr.
        let mut writes = Lifter::gpr_locs(&[0]);
        writes.extend(Lifter::FLAG_LOCS);
        use iced_x86::Code as C;
        if matches!(ins.code(), C::Fxrstor_m512byte | C::Fxrstor64_m512byte | C::Xrstor_mem | C::Xrstor64_mem) {
            writes.extend((0..16).map(builder::xmm_loc));
            writes.push(builder::MXCSR);
        }
        l.call_helper(Helper::X87 as u32, vec![id, a], &writes);
        // fcomi and friends set the arithmetic flags through the state.
        l.flags = None;
        return Ok(Step::Continue);
    }
    if let Some(r) = sse::lift_sse(l, ins) {
        return r;
    }
    if is_x87(ins) {
        return Err(int::Unsupported(String::from("x87 instruction not implemented")));
    }
    int::lift_int(l, ins)
}

fn is_x87(ins: &Instruction) -> bool {
    ins.cpuid_features().iter().any(|f| {
        matches!(f, iced_x86::CpuidFeature::FPU | iced_x86::CpuidFeature::FPU287 | iced_x86::CpuidFeature::FPU387)
    })
}

/// Bytes of executable guest code from `addr` to the end of its segment's file data.
fn code_at(bin: &GuestBinary, addr: u64) -> &[u8] {
    for s in &bin.segments {
        if !s.exec || addr < s.vaddr {
            continue;
        }
        let off = addr - s.vaddr;
        let flen = (s.file_range.end - s.file_range.start) as u64;
        if off < flen {
            let start = s.file_range.start + off as usize;
            return bin.bytes.get(start..s.file_range.end).unwrap_or(&[]);
        }
    }
    &[]
}

struct FnBuild {
    entry: u64,
    lo: u64,
    hi: u64,
    listed: HashSet<u64>,
    blocks: BTreeMap<u64, Block>,
}

/// Lift every function of `map` into a closed program.
pub fn lift_program(bin: &GuestBinary, map: &CodeMap) -> Result<(Program, LiftStats), GuestError> {
    let mut leaders: HashSet<u64> = HashSet::new();
    let mut entries: BTreeSet<u64> = BTreeSet::new();
    for f in &map.functions {
        entries.insert(f.entry);
        leaders.insert(f.entry);
        leaders.extend(f.leaders.iter().copied());
    }
    let mut done: BTreeMap<u64, FnBuild> = BTreeMap::new();
    let mut traps: BTreeMap<u64, String> = BTreeMap::new();
    let mut pending: Vec<(u64, Option<u64>, Vec<u64>)> =
        map.functions.iter().map(|f| (f.entry, f.end, f.leaders.clone())).collect();
    while !pending.is_empty() {
        let mut external: BTreeSet<u64> = BTreeSet::new();
        for (entry, end, fl) in std::mem::take(&mut pending) {
            if done.contains_key(&entry) {
                continue;
            }
            let hi = match end {
                Some(e) if e > entry => e,
                _ => entries.range(entry + 1..).next().copied().unwrap_or(u64::MAX),
            };
            let mut fb = FnBuild {
                entry,
                lo: entry,
                hi,
                listed: fl.iter().copied().collect(),
                blocks: BTreeMap::new(),
            };
            let mut work: Vec<u64> = vec![entry];
            work.extend(fl.iter().copied());
            // Blocks starting at an instruction (not inside one) that lifted completely.
            let mut mains: Vec<u64> = Vec::new();
            while let Some(a) = work.pop() {
                if fb.blocks.contains_key(&a) {
                    continue;
                }
                let code = code_at(bin, a);
                let lifted = lift_at(code, a, &|x| leaders.contains(&x) || fb.listed.contains(&x), ARITH);
                if lifted.unsupported.is_none() {
                    mains.push(a);
                }
                if let Some((ta, what)) = lifted.unsupported {
                    traps.entry(ta).or_insert(what);
                }
                let extra_addrs: HashSet<u64> = lifted.extra.iter().map(|b| b.addr).collect();
                let mut succ = lifted.main.successors();
                for b in &lifted.extra {
                    succ.extend(b.successors());
                }
                if let Terminator::Call { ret, .. } = lifted.main.term {
                    work.push(ret);
                    succ.retain(|s| *s != ret);
                }
                for s in succ {
                    if extra_addrs.contains(&s) {
                        continue;
                    }
                    if (s >= fb.lo && s < fb.hi) || fb.listed.contains(&s) {
                        work.push(s);
                    } else {
                        external.insert(s);
                    }
                }
                for b in lifted.extra {
                    fb.blocks.entry(b.addr).or_insert(b);
                }
                fb.blocks.insert(a, lifted.main);
            }
            mains.sort_unstable();
            mains.dedup();
            let listed = fb.listed.clone();
            refine_flags(bin, &mut fb, &mains, &|x| leaders.contains(&x) || listed.contains(&x));
            done.insert(entry, fb);
        }
        // Every direct target outside its function must be a block start somewhere.
        let starts: HashSet<u64> = done.values().flat_map(|f| f.blocks.keys().copied()).collect();
        for s in external {
            if !starts.contains(&s) && !done.contains_key(&s) {
                entries.insert(s);
                pending.push((s, None, Vec::new()));
            }
        }
    }
    let mut stats = LiftStats::default();
    let mut program = Program::default();
    for t in &map.jump_tables {
        let mut targets = t.targets.clone();
        targets.sort_unstable();
        targets.dedup();
        program.jump_tables.insert(t.site, targets);
    }
    for (_, fb) in done {
        let mut blocks: Vec<Block> = Vec::with_capacity(fb.blocks.len());
        let mut rest = fb.blocks;
        if let Some(e) = rest.remove(&fb.entry) {
            blocks.push(e);
        }
        blocks.extend(rest.into_values());
        stats.blocks += blocks.len();
        stats.instructions += blocks.iter().map(|b| b.guest_insts as usize).sum::<usize>();
        let mut f = Function { entry: fb.entry, blocks };
        dead::remove_dead_flag_sets(&mut f);
        program.functions.push(f);
    }
    stats.functions = program.functions.len();
    stats.traps = traps.len();
    // One example per distinct mnemonic, lowest address first.
    let mut seen: HashSet<String> = HashSet::new();
    for (a, w) in traps {
        let key = w.split(' ').next().unwrap_or("").to_string();
        if seen.insert(key) && stats.trap_examples.len() < 64 {
            stats.trap_examples.push((a, w));
        }
    }
    Ok((program, stats))
}


#[cfg(test)]
mod tests;
