//! Code discovery: which guest addresses are functions and block starts.
//!
//! Discovery does not need symbols. Function entries come from the entry point, `.eh_frame`
//! FDE starts, symbols when present, code pointers from init arrays and relocations, pointers
//! found in data (non-PIE), `lea`/immediate operands that name code, and the targets of direct
//! calls met during recursive descent (which also finds code without unwind information, such
//! as hand-written assembly). Block leaders are branch targets, fall-throughs of conditional
//! branches, return addresses, `syscall` instructions, address-taken code locations, and the
//! targets of recognized jump tables. A function with an indirect jump that is neither a
//! recognized jump table nor a tail call through memory gets every instruction boundary of its
//! extent as a leader (linear sweep), so every address an indirect branch can reach is known.
//!
//! Leaders belong to the function whose FDE extent contains them, or — for code without an
//! FDE — to the function whose descent reached them. They are seeds: the lifter adds the
//! direct targets it meets itself.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

use crate::guest::{GuestBinary, GuestError};

/// One discovered guest function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionMap {
    /// Entry address.
    pub entry: u64,
    /// End of the function's extent when known (FDE or symbol), exclusive.
    pub end: Option<u64>,
    /// Known block starts in this function (sorted, deduplicated, includes `entry`):
    /// branch targets, jump-table targets, and — for functions with an indirect jump that is
    /// not a recognized jump table — every instruction boundary.
    pub leaders: Vec<u64>,
}

/// A recognized jump table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JumpTable {
    /// Address of the indirect `jmp`.
    pub site: u64,
    /// Guest address of the table.
    pub table: u64,
    /// Targets in table order (may repeat).
    pub targets: Vec<u64>,
}

/// Result of code discovery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeMap {
    /// Functions, sorted by entry, entries unique.
    pub functions: Vec<FunctionMap>,
    /// Recognized jump tables, sorted by site.
    pub jump_tables: Vec<JumpTable>,
    /// Entries of functions that got the linear-sweep fallback (an indirect jump that is not
    /// a recognized jump table), sorted.
    pub swept: Vec<u64>,
}

impl CodeMap {
    /// The function with entry `entry`.
    pub fn function(&self, entry: u64) -> Option<&FunctionMap> {
        self.functions.binary_search_by_key(&entry, |f| f.entry).ok().map(|i| &self.functions[i])
    }

    /// True when `addr` is a leader of any function.
    pub fn is_leader(&self, addr: u64) -> bool {
        self.functions.iter().any(|f| f.leaders.binary_search(&addr).is_ok())
    }

    /// Every leader of every function, sorted and deduplicated.
    pub fn all_leaders(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.functions.iter().flat_map(|f| f.leaders.iter().copied()).collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// A hasher for guest addresses (multiplicative hashing; addresses are not adversarial
/// keys here, and the default SipHash dominates discovery time).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<AddrHasher>>;
type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<AddrHasher>>;

/// Largest jump table accepted.
const MAX_TABLE_ENTRIES: u64 = 1 << 16;
/// Instructions walked backwards from an indirect jump to find its table and bound.
const MAX_WALK: usize = 64;
/// Largest linear sweep of a function without a known extent.
const MAX_SWEEP: u64 = 1 << 20;

/// Find the functions and block starts of `bin`.
pub fn discover(bin: &GuestBinary) -> Result<CodeMap, GuestError> {
    let mut d = Discoverer::new(bin);
    d.run();
    Ok(d.finish())
}

#[derive(Default)]
struct Func {
    extent: Option<Range<u64>>,
    leaders: BTreeSet<u64>,
    visited: HashSet<u64>,
    pending: Vec<u64>,
    indirect: Vec<u64>,
    swept: bool,
    /// For a function without a known extent: the next function entry after it, once known.
    bound: Option<u64>,
}

enum Indirect {
    Table(JumpTable),
    /// The target register holds a constant (e.g. a weak undefined function, 0).
    Constant(u64),
    TailCall,
    Unknown,
}

struct Discoverer<'a> {
    bin: &'a GuestBinary,
    funcs: BTreeMap<u64, Func>,
    work: Vec<u64>,
    /// Decoded instructions by address.
    insns: HashMap<u64, Instruction>,
    /// Address of the instruction that ends where the key begins.
    prev_of: HashMap<u64, u64>,
    /// Conditional and direct jumps by target.
    preds: HashMap<u64, Vec<u64>>,
    tables: BTreeMap<u64, JumpTable>,
    resolved: HashSet<u64>,
    symbol_addrs: HashSet<u64>,
    /// Numbers in data or immediates that point inside an FDE extent: leaders of its function
    /// once they turn out to be instruction boundaries there.
    maybe_refs: Vec<u64>,
    /// FDE starts one byte before their function (not functions themselves).
    early_fdes: HashSet<u64>,
    info: InstructionInfoFactory,
}

impl<'a> Discoverer<'a> {
    fn new(bin: &'a GuestBinary) -> Self {
        Discoverer {
            bin,
            funcs: BTreeMap::new(),
            work: Vec::new(),
            insns: HashMap::default(),
            prev_of: HashMap::default(),
            preds: HashMap::default(),
            tables: BTreeMap::new(),
            resolved: HashSet::default(),
            symbol_addrs: bin.symbols.iter().map(|s| s.0).collect(),
            maybe_refs: Vec::new(),
            early_fdes: HashSet::default(),
            info: InstructionInfoFactory::new(),
        }
    }

    fn run(&mut self) {
        let bin = self.bin;
        for f in &bin.fdes {
            self.add_function(f.start);
        }
        self.add_function(bin.entry);
        for s in &bin.symbols {
            self.add_function(s.0);
        }
        for &p in bin.code_pointers.iter().chain(&bin.landing_pads) {
            self.add_code_ref(p, None);
        }
        let mut scanned = false;
        loop {
            self.descend();
            if !scanned {
                scanned = true;
                if !bin.is_pie {
                    self.scan_data_pointers();
                }
                continue;
            }
            if self.confirm_maybe_refs() {
                continue;
            }
            if self.refine_bounds() {
                continue;
            }
            if self.resolve_indirect_jumps() {
                continue;
            }
            if self.sweep_unresolved() {
                continue;
            }
            if self.fill_gaps() {
                continue;
            }
            break;
        }
    }

    fn finish(self) -> CodeMap {
        let mut swept = Vec::new();
        let early = self.early_fdes;
        let functions = self
            .funcs
            .into_iter()
            .filter(|(entry, _)| !early.contains(entry))
            .map(|(entry, f)| {
                if f.swept {
                    swept.push(entry);
                }
                FunctionMap { entry, end: f.extent.map(|r| r.end), leaders: f.leaders.into_iter().collect() }
            })
            .collect();
        CodeMap { functions, jump_tables: self.tables.into_values().collect(), swept }
    }

    /// The extent of a new function at `entry`: its FDE, its symbol, or the rest of the FDE
    /// it lies in.
    fn extent_of(&self, entry: u64) -> Option<Range<u64>> {
        let fdes = &self.bin.fdes;
        if let Ok(i) = fdes.binary_search_by_key(&entry, |r| r.start) {
            return Some(fdes[i].clone());
        }
        let syms = &self.bin.symbols;
        let i = syms.partition_point(|s| s.0 < entry);
        if let Some(s) = syms[i..].iter().take_while(|s| s.0 == entry).find(|s| s.1 > 0) {
            return Some(entry..entry.saturating_add(s.1));
        }
        self.bin.fde_containing(entry).map(|r| entry..r.end)
    }

    fn add_function(&mut self, entry: u64) {
        let extent = self.extent_of(entry);
        self.add_function_with(entry, extent);
    }

    /// The length of the PLT entry at `t` up to and including its `jmp *GOT(%rip)` (lazy
    /// `.plt`, `.plt.sec` and `.plt.got` entries, with or without `endbr64` and `bnd`), if
    /// the code at `t` is one.
    fn plt_stub_len(&mut self, t: u64) -> Option<u64> {
        let mut a = t;
        for _ in 0..2 {
            let i = self.decode_at(a)?;
            match i.mnemonic() {
                Mnemonic::Endbr64 if a == t => a = i.next_ip(),
                Mnemonic::Jmp
                    if i.op0_kind() == iced_x86::OpKind::Memory
                        && i.memory_base() == iced_x86::Register::RIP =>
                {
                    return Some(i.next_ip() - t);
                }
                _ => return None,
            }
        }
        None
    }

    fn add_function_with(&mut self, entry: u64, extent: Option<Range<u64>>) {
        if !self.bin.is_code(entry) || self.funcs.contains_key(&entry) {
            return;
        }
        // Without an extent, the function ends at the next function known so far at the
        // latest (refined as more functions are found).
        let bound = if extent.is_none() { Some(self.next_boundary(entry)) } else { None };
        let mut f = Func { extent, bound, ..Func::default() };
        f.leaders.insert(entry);
        f.pending.push(entry);
        self.funcs.insert(entry, f);
        self.work.push(entry);
    }

    fn add_leader(&mut self, func: u64, addr: u64) {
        if !self.bin.is_code(addr) {
            return;
        }
        if let Some(f) = self.funcs.get_mut(&func) {
            if f.leaders.insert(addr) {
                f.pending.push(addr);
                self.work.push(func);
            }
        }
    }

    fn extent(&self, func: u64) -> Option<Range<u64>> {
        self.funcs.get(&func).and_then(|f| f.extent.clone())
    }

    /// The function owning `addr` by FDE extent, when `addr` is inside (not at the start of)
    /// an FDE.
    fn fde_owner(&self, addr: u64) -> Option<u64> {
        self.bin.fde_containing(addr).map(|r| r.start).filter(|&s| s != addr)
    }

    /// A code address that is called or whose address is taken.
    fn add_code_ref(&mut self, t: u64, from: Option<u64>) {
        if !self.bin.is_code(t) || self.funcs.contains_key(&t) {
            return;
        }
        if let Some(f) = from {
            if self.extent(f).is_some_and(|r| r.contains(&t)) {
                self.add_leader(f, t);
                return;
            }
        }
        if let Some(owner) = self.fde_owner(t) {
            if let Some(len) = self.plt_stub_len(t) {
                // A PLT entry called from code: one FDE covers the whole `.plt`, but each
                // entry is a function of its own (its `jmp *GOT` goes to another function).
                // As a leader of the `.plt`'s function, every call through it would leave
                // translated code for the dispatcher.
                self.add_function_with(t, Some(t..t + len));
                return;
            }
            let overlaps = t - owner == 1 && self.decode_at(owner).is_none_or(|i| i.len() > 1);
            if overlaps {
                // An FDE that starts one byte early on purpose (signal-return trampolines, so
                // that unwinders looking up `pc - 1` find it): the byte before is not code.
                self.early_fdes.insert(owner);
                self.add_function(t);
            } else if self.only_padding(owner, t) {
                // An FDE that covers the alignment padding before its function.
                self.add_function(t);
            } else {
                self.add_leader(owner, t);
            }
            return;
        }
        self.add_function(t);
    }

    /// Whether the bytes from `from` to `to` decode as padding (`nop`, `int3`) ending exactly
    /// at `to`.
    fn only_padding(&mut self, from: u64, to: u64) -> bool {
        let mut a = from;
        while a < to {
            match self.decode_at(a) {
                Some(i) if matches!(i.mnemonic(), Mnemonic::Nop | Mnemonic::Int3) => a = i.next_ip(),
                _ => return false,
            }
        }
        a == to
    }

    /// A direct jump or jump-table target `t` reached from function `f`.
    fn add_branch(&mut self, f: u64, t: u64) {
        if !self.bin.is_code(t) {
            return;
        }
        let extent = self.extent(f);
        if extent.as_ref().is_some_and(|r| r.contains(&t)) {
            self.add_leader(f, t);
        } else if self.funcs.contains_key(&t) {
            // A tail call or a jump to another function's entry.
        } else if let Some(owner) = self.fde_owner(t) {
            self.add_leader(owner, t);
        } else if extent.is_none() && t > f && self.bound(f).is_none_or(|b| t < b) {
            self.add_leader(f, t);
        } else {
            self.add_function(t);
        }
    }

    /// Whether decoding may continue from function `f` into `next`.
    fn may_fall_into(&self, f: u64, next: u64) -> bool {
        if !self.bin.is_code(next) {
            return false;
        }
        match self.extent(f) {
            Some(r) => r.contains(&next),
            None => {
                !self.funcs.contains_key(&next)
                    && self.bin.fde_containing(next).is_none()
                    && self.bound(f).is_none_or(|b| next < b)
            }
        }
    }

    fn bound(&self, func: u64) -> Option<u64> {
        self.funcs.get(&func).and_then(|f| f.bound)
    }

    /// The first function entry or FDE start after `entry`, or the end of its code range.
    fn next_boundary(&self, entry: u64) -> u64 {
        let next_func = self.funcs.range(entry + 1..).next().map(|(&e, _)| e);
        let i = self.bin.fdes.partition_point(|r| r.start <= entry);
        let next_fde = self.bin.fdes.get(i).map(|r| r.start);
        let range_end = self.bin.code_ranges.iter().find(|r| r.contains(&entry)).map(|r| r.end);
        let seg_end = self.bin.exec_range_of(entry).map(|r| r.end);
        [next_func, next_fde, range_end, seg_end].into_iter().flatten().min().unwrap_or(entry)
    }

    /// Functions without a known extent end at the next function entry. When that bound
    /// changes, the function is decoded again within it: jumps beyond it are tail calls and
    /// make new functions, which refine the bounds of others. Returns whether any changed.
    fn refine_bounds(&mut self) -> bool {
        let entries: Vec<u64> =
            self.funcs.iter().filter(|(_, f)| f.extent.is_none()).map(|(&e, _)| e).collect();
        let mut changed = false;
        for e in entries {
            let b = self.next_boundary(e);
            let Some(f) = self.funcs.get_mut(&e) else { continue };
            if f.bound == Some(b) {
                continue;
            }
            f.bound = Some(b);
            f.visited.clear();
            f.indirect.clear();
            f.leaders.retain(|&l| (e..b).contains(&l));
            f.pending = f.leaders.iter().copied().collect();
            self.work.push(e);
            changed = true;
        }
        changed
    }

    /// Code ranges not covered by any decoded instruction or FDE: after padding, the first
    /// instruction of such a gap starts a function (unreferenced, or only reached through
    /// pointers computed at run time). Returns whether any was added.
    fn fill_gaps(&mut self) -> bool {
        let mut covered: Vec<(u64, u64)> = self.insns.iter().map(|(&a, i)| (a, i.next_ip())).collect();
        covered.extend(self.bin.fdes.iter().map(|r| (r.start, r.end)));
        covered.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in covered {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let mut added = false;
        let bin = self.bin;
        for r in &bin.code_ranges {
            let mut a = r.start;
            let mut i = merged.partition_point(|m| m.1 <= a);
            while a < r.end {
                if let Some(&(s, e)) = merged.get(i) {
                    if s <= a {
                        a = a.max(e);
                        i += 1;
                        continue;
                    }
                }
                let gap_end = merged.get(i).map_or(r.end, |m| m.0.min(r.end));
                // Skip padding.
                while a < gap_end {
                    if bin.read(a, 1) == Some(&[0]) {
                        a += 1;
                        continue;
                    }
                    match self.decode_at(a) {
                        Some(insn) if matches!(insn.mnemonic(), Mnemonic::Nop | Mnemonic::Int3) => {
                            a = insn.next_ip();
                        }
                        _ => break,
                    }
                }
                if a >= gap_end {
                    continue;
                }
                if self.decode_at(a).is_none() || self.funcs.contains_key(&a) {
                    a = gap_end;
                    continue;
                }
                // Decode the new function now and continue after the code it covers, so a
                // run of unreferenced functions is found in one pass.
                self.add_function(a);
                self.descend();
                added = true;
                let end = self.funcs.get(&a).map_or(a, |f| {
                    f.visited.iter().filter_map(|v| self.insns.get(v)).map(|i| i.next_ip()).max().unwrap_or(a)
                });
                a = if end > a { end.min(gap_end) } else { gap_end };
            }
        }
        added
    }

    fn fall_through(&mut self, f: u64, next: u64) {
        if self.may_fall_into(f, next) {
            self.add_leader(f, next);
        }
    }

    fn decode_at(&mut self, addr: u64) -> Option<Instruction> {
        if let Some(i) = self.insns.get(&addr) {
            return Some(*i);
        }
        let code = self.bin.code_at(addr)?;
        let code = &code[..code.len().min(15)];
        let mut dec = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
        let insn = dec.decode();
        if insn.is_invalid() {
            return None;
        }
        self.insns.insert(addr, insn);
        self.prev_of.entry(insn.next_ip()).or_insert(addr);
        Some(insn)
    }

    /// Recursive descent until no function has pending leaders.
    fn descend(&mut self) {
        while let Some(f) = self.work.pop() {
            while let Some(start) = self.funcs.get_mut(&f).and_then(|x| x.pending.pop()) {
                self.decode_block(f, start);
            }
        }
    }

    fn decode_block(&mut self, f: u64, start: u64) {
        let mut addr = start;
        loop {
            let first_visit = self.funcs.get_mut(&f).is_some_and(|x| x.visited.insert(addr));
            if !first_visit {
                return;
            }
            let Some(insn) = self.decode_at(addr) else { return };
            let next = insn.next_ip();
            self.scan_operands(f, &insn);
            if insn.mnemonic() == Mnemonic::Syscall {
                if addr != start {
                    self.add_leader(f, addr);
                }
                self.fall_through(f, next);
                return;
            }
            match insn.flow_control() {
                FlowControl::Next => {}
                FlowControl::ConditionalBranch | FlowControl::XbeginXabortXend => {
                    if insn.op_count() > 0 && is_near_branch(insn.op0_kind()) {
                        let t = insn.near_branch_target();
                        self.preds.entry(t).or_default().push(addr);
                        self.add_branch(f, t);
                    }
                    if insn.flow_control() == FlowControl::ConditionalBranch {
                        self.fall_through(f, next);
                        return;
                    }
                }
                FlowControl::UnconditionalBranch => {
                    if is_near_branch(insn.op0_kind()) {
                        let t = insn.near_branch_target();
                        self.preds.entry(t).or_default().push(addr);
                        self.add_branch(f, t);
                    }
                    return;
                }
                FlowControl::IndirectBranch => {
                    if let Some(x) = self.funcs.get_mut(&f) {
                        x.indirect.push(addr);
                    }
                    return;
                }
                FlowControl::Call => {
                    if is_near_branch(insn.op0_kind()) {
                        self.add_code_ref(insn.near_branch_target(), Some(f));
                    }
                    self.fall_through(f, next);
                    return;
                }
                FlowControl::IndirectCall => {
                    self.fall_through(f, next);
                    return;
                }
                FlowControl::Return | FlowControl::Interrupt | FlowControl::Exception => return,
            }
            if !self.may_fall_into(f, next) {
                return;
            }
            addr = next;
        }
    }

    /// Code addresses named by `lea`, by immediates (non-PIE), and by pointers that direct
    /// memory operands of indirect calls and jumps read (non-PIE).
    fn scan_operands(&mut self, f: u64, insn: &Instruction) {
        let bin = self.bin;
        if insn.is_ip_rel_memory_operand() {
            let t = insn.ip_rel_memory_address();
            if insn.mnemonic() == Mnemonic::Lea {
                self.add_code_ref(t, Some(f));
            } else if !bin.is_pie
                && matches!(insn.flow_control(), FlowControl::IndirectCall | FlowControl::IndirectBranch)
            {
                if let Some(p) = bin.read_u64(t) {
                    self.add_code_ref(p, None);
                }
            }
            return;
        }
        if bin.is_pie {
            return;
        }
        for i in 0..insn.op_count() {
            let v = match insn.op_kind(i) {
                OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64 => {
                    insn.try_immediate(i).unwrap_or(0)
                }
                OpKind::Memory
                    if insn.mnemonic() == Mnemonic::Lea
                        && insn.memory_base() == Register::None
                        && insn.memory_index() == Register::None =>
                {
                    insn.memory_displacement64()
                }
                _ => continue,
            };
            if self.is_known_code_name(v) {
                self.add_code_ref(v, Some(f));
            } else if self.fde_owner(v).is_some() {
                self.maybe_refs.push(v);
            }
        }
    }

    /// Whether a bare number is certainly a code address: an FDE start, a symbol, or a known
    /// function entry.
    fn is_known_code_name(&self, v: u64) -> bool {
        self.funcs.contains_key(&v)
            || self.symbol_addrs.contains(&v)
            || self.bin.fdes.binary_search_by_key(&v, |r| r.start).is_ok()
    }

    /// Non-PIE: aligned 64-bit values in the file that point to code. Values at FDE starts or
    /// known entries are already functions; values in code without an FDE become functions;
    /// values inside an FDE extent become leaders only if they fall on a decoded instruction.
    fn scan_data_pointers(&mut self) {
        let bin = self.bin;
        let mut hits = Vec::new();
        for seg in &bin.segments {
            let r = seg.file_backed();
            let mut a = (r.start + 7) & !7;
            while a + 8 <= r.end {
                if let Some(v) = bin.read_u64(a) {
                    if bin.is_code(v) && !self.funcs.contains_key(&v) {
                        hits.push(v);
                    }
                }
                a += 8;
            }
        }
        hits.sort_unstable();
        hits.dedup();
        for v in hits {
            if self.fde_owner(v).is_some() {
                self.maybe_refs.push(v);
            } else if bin.fde_containing(v).is_none() && self.decode_at(v).is_some() {
                self.add_function(v);
            }
        }
    }

    /// Makes leaders of the candidate code references that are instruction boundaries of the
    /// function owning them. Returns whether any was added.
    fn confirm_maybe_refs(&mut self) -> bool {
        let refs = std::mem::take(&mut self.maybe_refs);
        let mut added = false;
        for v in refs {
            let Some(owner) = self.fde_owner(v) else { continue };
            let known = self.funcs.get(&owner).is_some_and(|f| f.visited.contains(&v));
            if !known {
                self.maybe_refs.push(v);
            } else if self.funcs.get(&owner).is_some_and(|f| !f.leaders.contains(&v)) {
                self.add_leader(owner, v);
                added = true;
            }
        }
        added
    }

    /// Try to explain every not yet explained indirect jump. Returns whether anything changed.
    fn resolve_indirect_jumps(&mut self) -> bool {
        let mut sites = Vec::new();
        for (&entry, f) in &self.funcs {
            for &s in &f.indirect {
                if !self.resolved.contains(&s) {
                    sites.push((entry, s));
                }
            }
        }
        let mut changed = false;
        for (f, site) in sites {
            match self.classify_indirect(site) {
                Indirect::Table(t) => {
                    self.resolved.insert(site);
                    for &target in &t.targets {
                        self.add_branch(f, target);
                    }
                    self.tables.insert(site, t);
                    changed = true;
                }
                Indirect::TailCall => {
                    self.resolved.insert(site);
                }
                Indirect::Constant(t) => {
                    self.resolved.insert(site);
                    self.add_branch(f, t);
                    changed = true;
                }
                Indirect::Unknown => {}
            }
        }
        changed && !self.work.is_empty()
    }

    /// Linear sweep of every function that still has an unexplained indirect jump.
    fn sweep_unresolved(&mut self) -> bool {
        let todo: Vec<u64> = self
            .funcs
            .iter()
            .filter(|(_, f)| !f.swept && f.indirect.iter().any(|s| !self.resolved.contains(s)))
            .map(|(&e, _)| e)
            .collect();
        for &entry in &todo {
            let end = match self.extent(entry) {
                Some(r) => r.end,
                None => self.next_boundary(entry).min(entry.saturating_add(MAX_SWEEP)),
            };
            if let Some(f) = self.funcs.get_mut(&entry) {
                f.swept = true;
            }
            let mut a = entry;
            while a < end {
                let Some(insn) = self.decode_at(a) else { break };
                self.add_leader(entry, a);
                a = insn.next_ip();
            }
        }
        !todo.is_empty()
    }

    fn writes(&mut self, insn: &Instruction, reg: Register) -> bool {
        let info = self.info.info(insn);
        info.used_registers().iter().any(|u| {
            u.register().full_register() == reg
                && matches!(
                    u.access(),
                    OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
                )
        })
    }

    /// Decoded instructions that pass control directly to `addr`: the one before it if it
    /// falls through, and direct jumps to it. None at function entries.
    fn preds_of(&self, addr: u64) -> Vec<(Instruction, Edge)> {
        let mut out = Vec::new();
        if self.funcs.contains_key(&addr) {
            return out;
        }
        if let Some(insn) = self.prev_of.get(&addr).and_then(|p| self.insns.get(p)) {
            if !matches!(
                insn.flow_control(),
                FlowControl::UnconditionalBranch | FlowControl::IndirectBranch | FlowControl::Return
            ) {
                out.push((*insn, Edge::Fall));
            }
        }
        for p in self.preds.get(&addr).into_iter().flatten() {
            if let Some(insn) = self.insns.get(p) {
                out.push((*insn, Edge::Branch));
            }
        }
        out
    }

    /// The nearest instruction before `at` (searching predecessors breadth first) that
    /// writes `reg`.
    fn find_def(&mut self, at: u64, reg: Register) -> Option<Instruction> {
        let mut seen = HashSet::default();
        let mut queue = std::collections::VecDeque::from([at]);
        let mut budget = MAX_WALK * 2;
        while let Some(addr) = queue.pop_front() {
            for (p, _) in self.preds_of(addr) {
                if !seen.insert(p.ip()) {
                    continue;
                }
                if budget == 0 {
                    return None;
                }
                budget -= 1;
                if self.writes(&p, reg) {
                    return Some(p);
                }
                queue.push_back(p.ip());
            }
        }
        None
    }

    /// Symbolic value of register `reg` just before the instruction at `at`.
    fn eval_reg(&mut self, reg: Register, at: u64, depth: u32) -> Val {
        let reg = reg.full_register();
        match self.eval_reg_inner(reg, at, depth) {
            // An opaque value is named by the register asked for, at the point asked for:
            // the bound search follows copies and reloads backwards from there itself.
            Val::Index(..) => Val::Index(Loc::Reg(reg), at),
            v => v,
        }
    }

    fn eval_reg_inner(&mut self, reg: Register, at: u64, depth: u32) -> Val {
        let unknown = Val::Index(Loc::Reg(reg), at);
        if depth == 0 || reg == Register::None {
            return unknown;
        }
        let Some(def) = self.find_def(at, reg) else { return unknown };
        let d = depth - 1;
        let op1 = if def.op_count() >= 2 { def.op1_kind() } else { OpKind::Register };
        match def.mnemonic() {
            // Address arithmetic that combines values (`[rip+x]`, `[b+i*s]`, `[i*s]`); an
            // offset added to a single value makes it opaque (its bound is checked later).
            Mnemonic::Lea
                if def.is_ip_rel_memory_operand()
                    || (def.memory_index() != Register::None && def.memory_displacement64() == 0) =>
            {
                self.eval_mem(&def, d)
            }
            Mnemonic::Mov | Mnemonic::Movzx if op1 == OpKind::Register => {
                self.eval_reg(def.op1_register(), def.ip(), d)
            }
            Mnemonic::Mov if op1 == OpKind::Memory => {
                let size = def.op0_register().size();
                // A 32-bit (or smaller) value loaded from a stack slot, a field or a global is
                // an index variable (whose comparison may be on that memory); 64-bit loads and
                // loads with an index register are data or pointers.
                match mem_slot(&def) {
                    Some(loc) if size <= 4 => Val::Index(loc, def.ip()),
                    _ => Val::Load { size, sext: false, addr: Box::new(self.eval_mem(&def, d)) },
                }
            }
            Mnemonic::Mov if op1 != OpKind::Memory => match def.try_immediate(1) {
                Ok(v) => Val::Const(v),
                Err(_) => unknown,
            },
            Mnemonic::Movsxd if op1 == OpKind::Memory => {
                let size = def.memory_size().size();
                Val::Load { size, sext: true, addr: Box::new(self.eval_mem(&def, d)) }
            }
            Mnemonic::Movsxd => Val::SExt32(Box::new(self.eval_reg(def.op1_register(), def.ip(), d))),
            Mnemonic::Cdqe => Val::SExt32(Box::new(self.eval_reg(Register::RAX, def.ip(), d))),
            Mnemonic::Add if op1 == OpKind::Register => {
                let a = self.eval_reg(reg, def.ip(), d);
                let b = self.eval_reg(def.op1_register(), def.ip(), d);
                Val::Add(Box::new(a), Box::new(b))
            }
            Mnemonic::Shl if op1 != OpKind::Register && op1 != OpKind::Memory => {
                match def.try_immediate(1) {
                    Ok(k) if k < 8 => Val::Mul(Box::new(self.eval_reg(reg, def.ip(), d)), 1 << k),
                    _ => unknown,
                }
            }
            // Anything else: the value after `def` is an opaque index (its bound may come from
            // `def` itself, e.g. `and reg, mask`).
            _ => Val::Index(Loc::Reg(reg), at),
        }
    }

    /// Symbolic address of `insn`'s memory operand.
    fn eval_mem(&mut self, insn: &Instruction, depth: u32) -> Val {
        if insn.is_ip_rel_memory_operand() {
            return Val::Const(insn.ip_rel_memory_address());
        }
        let mut v = Val::Const(insn.memory_displacement64());
        if insn.memory_base() != Register::None {
            let b = self.eval_reg(insn.memory_base(), insn.ip(), depth);
            v = Val::Add(Box::new(v), Box::new(b));
        }
        if insn.memory_index() != Register::None {
            let i = self.eval_reg(insn.memory_index(), insn.ip(), depth);
            v = Val::Add(Box::new(v), Box::new(Val::Mul(Box::new(i), u64::from(insn.memory_index_scale()))));
        }
        v
    }

    fn classify_indirect(&mut self, site: u64) -> Indirect {
        let Some(jmp) = self.insns.get(&site).copied() else { return Indirect::Unknown };
        if jmp.op_count() != 1 {
            return Indirect::Unknown;
        }
        let target = match jmp.op0_kind() {
            OpKind::Memory => {
                if jmp.memory_base() == Register::RIP {
                    return Indirect::TailCall;
                }
                let size = jmp.memory_size().size();
                Val::Load { size, sext: false, addr: Box::new(self.eval_mem(&jmp, EVAL_DEPTH)) }
            }
            OpKind::Register => self.eval_reg(jmp.op0_register(), site, EVAL_DEPTH),
            _ => return Indirect::Unknown,
        };
        if let Val::Const(t) = target {
            return Indirect::Constant(t);
        }
        // Absolute table: load8(T + 8*i).
        if let Val::Load { size: 8, addr, .. } = &target {
            if let Some((table, 8, Val::Index(loc, pos))) = table_form(addr) {
                return self.finish_table(site, table, loc, pos, 8);
            }
            // Loaded from a computed slot of a data table the bound of which is not known
            // (e.g. a table of label addresses indexed through another table): unknown.
            if let Some((c, terms)) = linear(addr) {
                if !terms.is_empty() && self.bin.segment_at(c).is_some() {
                    return Indirect::Unknown;
                }
            }
            // A pointer loaded from memory: a tail call through a function pointer.
            return Indirect::TailCall;
        }
        // Relative table: T + sext(load4(T + 4*i)).
        if let Some((t1, 1, entry)) = table_form(&target) {
            let load = match &entry {
                Val::Load { size: 4, sext: true, addr } => Some(addr.as_ref()),
                Val::SExt32(inner) => match inner.as_ref() {
                    Val::Load { size: 4, addr, .. } => Some(addr.as_ref()),
                    _ => None,
                },
                _ => None,
            };
            if let Some(addr) = load {
                if let Some((t2, 4, Val::Index(loc, pos))) = table_form(addr) {
                    if t1 == t2 {
                        return self.finish_table(site, t1, loc, pos, 4);
                    }
                }
            }
        }
        // A value that was not computed here (an argument, a callee-saved register, popped from
        // the stack): a function pointer or a return address. Code whose address is taken is
        // already known (lea, relocations, pointers in data), so this is a tail call. What is
        // left is address arithmetic on code: unknown.
        if let Val::Index(..) = target {
            return Indirect::TailCall;
        }
        Indirect::Unknown
    }

    fn finish_table(&mut self, site: u64, table: u64, index: Loc, from: u64, entry: u64) -> Indirect {
        let Some(n) = self.find_bound(from, index) else { return Indirect::Unknown };
        if n == 0 || n > MAX_TABLE_ENTRIES {
            return Indirect::Unknown;
        }
        let mut targets = Vec::new();
        for i in 0..n {
            let slot = table.wrapping_add(i * entry);
            let t = if entry == 8 {
                match self.bin.read_u64(slot) {
                    Some(v) => v,
                    None => return Indirect::Unknown,
                }
            } else {
                match self.bin.read_u32(slot) {
                    Some(v) => table.wrapping_add(i64::from(v as i32) as u64),
                    None => return Indirect::Unknown,
                }
            };
            if !self.bin.is_code(t) {
                return Indirect::Unknown;
            }
            targets.push(t);
        }
        Indirect::Table(JumpTable { site, table, targets })
    }

    /// The number of table entries for an index held in `loc` just before `from`: from a
    /// `cmp loc, imm` + `ja`/`jae` falling through towards the table load, a `jbe`/`jb`
    /// branching to it, or an `and reg, mask`. Follows copies between registers and stack
    /// slots backwards, including a copy made before the comparison.
    fn find_bound(&mut self, from: u64, loc: Loc) -> Option<u64> {
        // (address, where the index is just before it, bound of a comparison of a register
        // that the index may turn out to be a copy of)
        let mut stack = vec![(from, loc, None::<(Loc, u64)>)];
        let mut seen = HashSet::default();
        let mut budget = MAX_WALK * 4;
        while let Some((addr, loc, pending)) = stack.pop() {
            for (p, edge) in self.preds_of(addr) {
                if !seen.insert((p.ip(), loc)) {
                    continue;
                }
                if budget == 0 {
                    return None;
                }
                budget -= 1;
                let mut pending = pending;
                let guard = match (p.mnemonic(), edge) {
                    (Mnemonic::Ja, Edge::Fall) | (Mnemonic::Jbe, Edge::Branch) => Some(1),
                    (Mnemonic::Jae, Edge::Fall) | (Mnemonic::Jb, Edge::Branch) => Some(0),
                    _ => None,
                };
                if let Some(plus) = guard {
                    if let Some((cloc, bound)) = self.cmp_before(p.ip(), plus) {
                        if cloc == loc {
                            return Some(bound);
                        }
                        pending = Some((cloc, bound));
                    }
                }
                let mut loc = loc;
                match loc {
                    Loc::Reg(reg) => {
                        if self.writes(&p, reg) {
                            let op1 = if p.op_count() >= 2 { p.op1_kind() } else { OpKind::Register };
                            match p.mnemonic() {
                                Mnemonic::Mov | Mnemonic::Movzx if op1 == OpKind::Register => {
                                    loc = Loc::Reg(p.op1_register().full_register());
                                }
                                Mnemonic::Mov if op1 == OpKind::Memory => match mem_slot(&p) {
                                    Some(slot) => loc = slot,
                                    None => continue,
                                },
                                Mnemonic::And if op1 != OpKind::Memory && op1 != OpKind::Register => {
                                    return p.try_immediate(1).ok().and_then(|m| m.checked_add(1));
                                }
                                _ => continue,
                            }
                            if pending.is_some_and(|(c, _)| c == loc) {
                                return pending.map(|(_, b)| b);
                            }
                        }
                    }
                    Loc::Mem(base, _) => {
                        if p.mnemonic() == Mnemonic::Mov
                            && p.op0_kind() == OpKind::Memory
                            && mem_slot(&p) == Some(loc)
                        {
                            if p.op1_kind() != OpKind::Register {
                                continue;
                            }
                            loc = Loc::Reg(p.op1_register().full_register());
                        } else if self.writes(&p, base) {
                            continue;
                        }
                    }
                }
                if let Some((Loc::Reg(c), _)) = pending {
                    if loc != Loc::Reg(c) && self.writes(&p, c) {
                        pending = None;
                    }
                }
                stack.push((p.ip(), loc, pending));
            }
        }
        None
    }

    /// The location compared and the resulting bound of the `cmp loc, imm` just before the
    /// conditional jump at `jcc` (`plus` is 1 for an inclusive limit).
    fn cmp_before(&mut self, jcc: u64, plus: u64) -> Option<(Loc, u64)> {
        let (c, _) = self.preds_of(jcc).into_iter().find(|(_, e)| *e == Edge::Fall)?;
        if c.mnemonic() != Mnemonic::Cmp {
            return None;
        }
        let (loc, size) = match c.op0_kind() {
            OpKind::Register => (Loc::Reg(c.op0_register().full_register()), c.op0_register().size()),
            OpKind::Memory => (mem_slot(&c)?, c.memory_size().size()),
            _ => return None,
        };
        let imm = c.try_immediate(1).ok()?;
        let imm = if size < 8 { imm & ((1u64 << (size * 8)) - 1) } else { imm };
        Some((loc, imm.checked_add(plus)?))
    }
}

/// How control reaches an instruction from a predecessor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edge {
    /// The predecessor falls through.
    Fall,
    /// The predecessor jumps to it.
    Branch,
}

/// Depth of the backward symbolic evaluation of an indirect jump's target.
const EVAL_DEPTH: u32 = 10;

/// Where a jump-table index lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Loc {
    /// A register (full 64-bit name).
    Reg(Register),
    /// A stack slot `[base + disp]` (unoptimized code).
    Mem(Register, u64),
}

/// A symbolic value built by walking backwards from an indirect jump.
#[derive(Clone, Debug)]
enum Val {
    Const(u64),
    /// An unknown value held in a location just before an address.
    Index(Loc, u64),
    Load { size: usize, sext: bool, addr: Box<Val> },
    Add(Box<Val>, Box<Val>),
    Mul(Box<Val>, u64),
    SExt32(Box<Val>),
}

/// Splits `v` into `constant + Σ coeff * term`.
fn linear(v: &Val) -> Option<(u64, Vec<(Val, u64)>)> {
    let mut c = 0u64;
    let mut terms = Vec::new();
    linearize(v, 1, &mut c, &mut terms, 0)?;
    Some((c, terms))
}

/// Splits `v` into `constant + coeff * term` when it has exactly one non-constant term.
fn table_form(v: &Val) -> Option<(u64, u64, Val)> {
    let (c, terms) = linear(v)?;
    match terms.as_slice() {
        [(t, k)] => Some((c, *k, t.clone())),
        _ => None,
    }
}

fn linearize(v: &Val, k: u64, c: &mut u64, terms: &mut Vec<(Val, u64)>, depth: u32) -> Option<()> {
    if depth > 16 {
        return None;
    }
    match v {
        Val::Const(x) => *c = c.wrapping_add(x.wrapping_mul(k)),
        Val::Add(a, b) => {
            linearize(a, k, c, terms, depth + 1)?;
            linearize(b, k, c, terms, depth + 1)?;
        }
        Val::Mul(a, m) => linearize(a, k.wrapping_mul(*m), c, terms, depth + 1)?,
        _ => terms.push((v.clone(), k)),
    }
    Some(())
}

/// A `[base + disp]` memory operand of `insn` (a stack slot, a structure field or, with
/// `rip`, a global) as a location an index can live in.
fn mem_slot(insn: &Instruction) -> Option<Loc> {
    let base = insn.memory_base();
    (base != Register::None && insn.memory_index() == Register::None)
        .then(|| Loc::Mem(base, insn.memory_displacement64()))
}

fn is_near_branch(kind: OpKind) -> bool {
    matches!(kind, OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64)
}
