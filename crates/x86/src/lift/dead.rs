//! Dead lazy-flag writes across the blocks of a function.
//!
//! Almost every x86 arithmetic instruction writes the flags, and the lifter records them in
//! the lazy-flag locations (`cc_op`, `cc_dst`, `cc_src1`, `cc_src2`) as it goes; most of
//! those writes are overwritten by a later instruction before anything reads them. Within
//! one instruction sequence the lifter already knows, but a compare at the end of one block
//! followed by an `add` at the start of each successor is only visible function-wide.
//!
//! [`remove_dead_flag_sets`] runs a backward liveness analysis of the four locations over
//! the direct edges between the blocks of one function and deletes each `Set` of a location
//! that is overwritten on every path before any read. Reads are `Get`, `EvalCond`, `Rflags`
//! and helper calls (a helper may read the whole state). Calls to other functions read none
//! (the SysV ABI gives the status flags no role across calls), and for the same reason
//! returns read none either; every other way out of the function's known edges counts as
//! reading all of them: indirect jumps, syscalls
//! (which save RFLAGS in r11), traps, calls into the function itself, and jumps to blocks
//! the function does not contain.
//! Pure operations left without a use by the deleted writes go too, and values are
//! renumbered.

use std::collections::HashMap;

use super::builder::{CC_DST, CC_OP, CC_SRC1, CC_SRC2};
use hcontainer_ir::{Block, CallTarget, Function, Op, Terminator, Value};

const LOCS: [u32; 4] = [CC_OP.offset, CC_DST.offset, CC_SRC1.offset, CC_SRC2.offset];
const ALL: u8 = 0b1111;

/// Bit of the lazy-flag location at `offset`, or 0 for any other location.
fn bit(offset: u32) -> u8 {
    LOCS.iter().position(|o| *o == offset).map_or(0, |i| 1 << i)
}

/// Locations an op reads (`gen`) and writes (`kill`).
fn effect(op: &Op) -> (u8, u8) {
    match op {
        Op::Get(loc) => (bit(loc.offset), 0),
        Op::Set(loc, _) => (0, bit(loc.offset)),
        Op::EvalCond(_) | Op::Rflags | Op::Helper(..) => (ALL, 0),
        _ => (0, 0),
    }
}

/// Flag locations live on entry of `b` given those live at its end.
fn live_in(b: &Block, out: u8) -> u8 {
    let mut live = out;
    for inst in b.insts.iter().rev() {
        let (gen, kill) = effect(&inst.op);
        live = (live & !kill) | gen;
    }
    live
}

/// Successors within the function, or `None` if the block may leave it (all flags live).
fn local_successors(b: &Block, index: &HashMap<u64, usize>) -> Option<Vec<usize>> {
    let targets = match &b.term {
        Terminator::Jump(a) => vec![*a],
        Terminator::Branch { taken, fallthrough, .. } => vec![*taken, *fallthrough],
        // The SysV ABI gives the status flags no role in the calling sequence: a callee does
        // not read the caller's flags, and code after the call does not read the callee's as
        // the caller's. So a call to another function reads none of them. A call to a block
        // of this function (position-finding tricks in hand-written code) counts as leaving.
        Terminator::Call { target: CallTarget::Direct(t), .. } if !index.contains_key(t) => Vec::new(),
        Terminator::Call { target: CallTarget::Indirect(_), .. } => Vec::new(),
        // For the same reason the caller does not read the flags a function returns with.
        Terminator::Return(_) => Vec::new(),
        _ => return None,
    };
    targets.iter().map(|a| index.get(a).copied()).collect()
}

/// Delete the writes of lazy-flag locations in `f` that no path reads before overwriting.
/// Returns how many writes went.
pub(crate) fn remove_dead_flag_sets(f: &mut Function) -> usize {
    let index: HashMap<u64, usize> = f.blocks.iter().enumerate().map(|(i, b)| (b.addr, i)).collect();
    let succs: Vec<Option<Vec<usize>>> = f.blocks.iter().map(|b| local_successors(b, &index)).collect();
    let mut live_out: Vec<u8> = succs.iter().map(|s| if s.is_none() { ALL } else { 0 }).collect();
    let mut live_in_of: Vec<u8> = f.blocks.iter().zip(&live_out).map(|(b, o)| live_in(b, *o)).collect();
    // Iterate to the fixed point (the sets only grow; four bits per block bound the rounds).
    loop {
        let mut changed = false;
        for i in (0..f.blocks.len()).rev() {
            let Some(s) = &succs[i] else { continue };
            let out = s.iter().fold(0u8, |acc, j| acc | live_in_of[*j]);
            if out != live_out[i] {
                live_out[i] = out;
                live_in_of[i] = live_in(&f.blocks[i], out);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut removed = 0;
    for (b, out) in f.blocks.iter_mut().zip(live_out) {
        removed += prune_block(b, out);
    }
    removed
}

/// Whether `op` has no effect besides its value.
fn is_pure(op: &Op) -> bool {
    matches!(op, Op::Const { .. } | Op::Pc(_) | Op::Bin(..) | Op::Un(..) | Op::Icmp(..) | Op::Fcmp(..) | Op::Select(..) | Op::Conv(..))
}

fn operands(op: &Op) -> Vec<Value> {
    match op {
        Op::Const { .. } | Op::Pc(_) | Op::Get(_) | Op::EvalCond(_) | Op::Rflags | Op::Fence => Vec::new(),
        Op::Set(_, v) | Op::Un(_, v) | Op::Conv(_, _, v) => vec![*v],
        Op::Load { addr, .. } => vec![*addr],
        Op::Store { addr, val } | Op::AtomicRmw { addr, val, .. } => vec![*addr, *val],
        Op::AtomicCas { addr, expected, new } => vec![*addr, *expected, *new],
        Op::Bin(_, a, b) | Op::Icmp(_, a, b) | Op::Fcmp(_, a, b) => vec![*a, *b],
        Op::Select(c, a, b) => vec![*c, *a, *b],
        Op::Helper(_, args) => args.clone(),
    }
}

fn map_op(op: &mut Op, m: &dyn Fn(Value) -> Value) {
    match op {
        Op::Const { .. } | Op::Pc(_) | Op::Get(_) | Op::EvalCond(_) | Op::Rflags | Op::Fence => {}
        Op::Set(_, v) | Op::Un(_, v) | Op::Conv(_, _, v) => *v = m(*v),
        Op::Load { addr, .. } => *addr = m(*addr),
        Op::Store { addr, val } | Op::AtomicRmw { addr, val, .. } => {
            *addr = m(*addr);
            *val = m(*val);
        }
        Op::AtomicCas { addr, expected, new } => {
            *addr = m(*addr);
            *expected = m(*expected);
            *new = m(*new);
        }
        Op::Bin(_, a, b) | Op::Icmp(_, a, b) | Op::Fcmp(_, a, b) => {
            *a = m(*a);
            *b = m(*b);
        }
        Op::Select(c, a, b) => {
            *c = m(*c);
            *a = m(*a);
            *b = m(*b);
        }
        Op::Helper(_, args) => {
            for a in args {
                *a = m(*a);
            }
        }
    }
}

fn term_values(t: &mut Terminator) -> Vec<&mut Value> {
    match t {
        Terminator::Branch { cond, .. } => vec![cond],
        Terminator::JumpIndirect(v) | Terminator::Return(v) => vec![v],
        Terminator::Call { target: CallTarget::Indirect(v), .. } => vec![v],
        _ => Vec::new(),
    }
}

/// Delete the dead flag writes of `b` (flags `out` live at its end) and the pure values
/// only they used. Returns how many writes went.
fn prune_block(b: &mut Block, out: u8) -> usize {
    let n = b.insts.len();
    let mut keep = vec![true; n];
    let mut used = vec![false; n];
    for v in term_values(&mut b.term) {
        if let Some(u) = used.get_mut(v.0 as usize) {
            *u = true;
        }
    }
    let mut live = out;
    let mut removed = 0;
    for i in (0..n).rev() {
        let op = &b.insts[i].op;
        let (gen, kill) = effect(op);
        let dead = match op {
            Op::Set(..) => kill != 0 && live & kill == 0,
            _ => is_pure(op) && !used[i],
        };
        live = (live & !kill) | gen;
        if dead {
            keep[i] = false;
            if matches!(op, Op::Set(..)) {
                removed += 1;
            }
            continue;
        }
        for v in operands(op) {
            if let Some(u) = used.get_mut(v.0 as usize) {
                *u = true;
            }
        }
    }
    if removed == 0 {
        return 0;
    }
    // New number of each kept instruction.
    let mut renum = vec![0u32; n];
    let mut next = 0u32;
    for i in 0..n {
        renum[i] = next;
        if keep[i] {
            next += 1;
        }
    }
    let m = |v: Value| Value(renum.get(v.0 as usize).copied().unwrap_or(v.0));
    let old = std::mem::take(&mut b.insts);
    for (i, mut inst) in old.into_iter().enumerate() {
        if keep[i] {
            map_op(&mut inst.op, &m);
            b.insts.push(inst);
        }
    }
    for v in term_values(&mut b.term) {
        *v = m(*v);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lift::lift_blocks;
    use hcontainer_abi::GuestState;
    use hcontainer_ir::interp::{run_block, Exit, Memory, SparseMemory, StepClock};

    const BASE: u64 = 0x1000;
    /// Blocks at 0x1000 (add, test, jz 0x1010), 0x1008 (sub, ret), 0x1010 (cmp), 0x1013 (adc,
    /// dec, jnz 0x1013: adc reads the carry of cmp and then of dec) and 0x101c (xor, ret).
    const CODE: [u8; 31] = [
        0x48, 0x01, 0xd8, 0x48, 0x85, 0xff, 0x74, 0x08, 0x48, 0x83, 0xe9, 0x01, 0xc3, 0x90, 0x90, 0x90, 0x48, 0x39,
        0xf7, 0x48, 0x83, 0xd0, 0x00, 0x48, 0xff, 0xc9, 0x75, 0xf7, 0x31, 0xd2, 0xc3,
    ];
    const LEADERS: [u64; 5] = [0x1000, 0x1008, 0x1010, 0x1013, 0x101c];

    fn function() -> Function {
        let mut blocks = Vec::new();
        for a in LEADERS {
            let code = &CODE[(a - BASE) as usize..];
            blocks.extend(lift_blocks(code, a, &|x| LEADERS.contains(&x)));
        }
        Function { entry: BASE, blocks }
    }

    fn flag_sets(f: &Function, addr: u64) -> usize {
        let b = f.blocks.iter().find(|b| b.addr == addr).expect("block exists");
        b.insts.iter().filter(|i| matches!(i.op, Op::Set(loc, _) if bit(loc.offset) != 0)).count()
    }

    fn run(f: &Function, st: &mut GuestState, mem: &mut SparseMemory) {
        let mut pc = f.entry;
        for _ in 0..1000 {
            let b = f.blocks.iter().find(|b| b.addr == pc).expect("jump to a block of the function");
            match run_block(b, st, mem, &mut StepClock::default()).expect("block runs") {
                Exit::Jump(a) => pc = a,
                Exit::Return(_) => return,
                e => panic!("unexpected exit {e:?}"),
            }
        }
        panic!("no return after 1000 blocks");
    }

    #[test]
    fn dead_flag_writes_go_and_live_ones_stay() {
        let orig = function();
        let mut f = orig.clone();
        let removed = remove_dead_flag_sets(&mut f);
        // add's and test's flags are overwritten by sub or cmp on both paths.
        assert_eq!(flag_sets(&orig, 0x1000), 8);
        assert_eq!(flag_sets(&f, 0x1000), 0);
        // cmp's carry is read by adc; sub's and xor's flags only reach a return.
        assert_eq!(flag_sets(&f, 0x1010), flag_sets(&orig, 0x1010));
        assert!(flag_sets(&orig, 0x1008) > 0 && flag_sets(&orig, 0x101c) > 0);
        assert_eq!(flag_sets(&f, 0x1008), 0);
        assert_eq!(flag_sets(&f, 0x101c), 0);
        let total = |f: &Function| LEADERS.iter().map(|a| flag_sets(f, *a)).sum::<usize>();
        assert_eq!(removed, total(&orig) - total(&f));
        assert!(removed >= 8);

        // Same final registers on random inputs (the flags are dead at the return).
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..200 {
            let mut st = GuestState::new();
            for r in &mut st.gpr {
                *r = rnd();
            }
            st.gpr[1] = 1 + (rnd() & 31);
            if i % 2 == 0 {
                st.gpr[7] = 0;
            }
            if i % 3 == 0 {
                st.gpr[6] = st.gpr[7];
            }
            st.gpr[4] = 0x7000_0800;
            let mut mem = SparseMemory::new();
            mem.map(0x7000_0000, 0x1000);
            mem.write(0x7000_0800, &0xdeadu64.to_le_bytes()).expect("stack mapped");
            let (mut a, mut b) = (st, st);
            run(&orig, &mut a, &mut mem.clone());
            run(&f, &mut b, &mut mem);
            assert_eq!(a.gpr, b.gpr, "input {i}");
            assert_eq!(a.rip, b.rip, "input {i}");
            assert_eq!(a.rflags_other, b.rflags_other, "input {i}");
        }
    }
}

#[cfg(test)]
mod call_tests {
    use super::*;
    use crate::lift::lift_blocks;

    fn flag_sets(b: &Block) -> usize {
        b.insts.iter().filter(|i| matches!(i.op, Op::Set(loc, _) if bit(loc.offset) != 0)).count()
    }

    #[test]
    fn flags_before_a_call_to_another_function_are_dead() {
        // 0x2000: cmp rdi, rsi ; call 0x3000 / 0x2008: ret
        let code = [0x48, 0x39, 0xf7, 0xe8, 0xf8, 0x0f, 0x00, 0x00, 0xc3];
        let leaders = [0x2000u64, 0x2008];
        let lift = |entry: u64| {
            let mut blocks = Vec::new();
            for a in leaders {
                blocks.extend(lift_blocks(&code[(a - 0x2000) as usize..], a, &|x| leaders.contains(&x)));
            }
            Function { entry, blocks }
        };
        let mut f = lift(0x2000);
        assert_eq!(flag_sets(&f.blocks[0]), 4);
        remove_dead_flag_sets(&mut f);
        assert_eq!(flag_sets(&f.blocks[0]), 0);
        // The same call into the function itself keeps them.
        let code2 = [0x48, 0x39, 0xf7, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xc3];
        let mut blocks = Vec::new();
        for a in leaders {
            blocks.extend(lift_blocks(&code2[(a - 0x2000) as usize..], a, &|x| leaders.contains(&x)));
        }
        let mut g = Function { entry: 0x2000, blocks };
        remove_dead_flag_sets(&mut g);
        assert_eq!(flag_sets(&g.blocks[0]), 4);
    }
}
