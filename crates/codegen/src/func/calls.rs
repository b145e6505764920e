//! Calls and returns: runtime entry points (direct in an executable, through the import table
//! in a unit), native calls into other translated functions and the return-address check after
//! them.

use super::*;

/// How the function being built reaches the runtime's entry points, in
/// `hcontainer_abi::unit::Import` order.
pub(super) enum RtRefs {
    /// Direct calls, resolved when the executable is linked.
    Direct([FuncRef; 6]),
    /// Indirect calls through the unit header's import table (signatures).
    Imported([ir::SigRef; 6]),
}

/// Imported callees of the function being built.
pub(super) struct Refs {
    pub(super) rt: RtRefs,
    pub(super) translated_sig: ir::SigRef,
}

/// Runtime entry points in `Import` order, with their symbols.
pub(super) const RT_NAMES: [(Import, &str); 6] = [
    (Import::Syscall, hcontainer_abi::calls::SYSCALL),
    (Import::Helper, hcontainer_abi::calls::HELPER),
    (Import::EvalCond, hcontainer_abi::calls::EVAL_COND),
    (Import::Rflags, hcontainer_abi::calls::RFLAGS),
    (Import::Lookup, hcontainer_abi::calls::LOOKUP),
    (Import::Unsupported, hcontainer_abi::calls::UNSUPPORTED),
];

pub(super) fn import(func: &mut ir::Function, id: FuncId, sig: ir::Signature) -> FuncRef {
    let sig = func.import_signature(sig);
    let name = func.declare_imported_user_function(UserExternalName { namespace: 0, index: id.as_u32() });
    func.import_function(ExtFuncData {
        name: ExternalName::user(name),
        signature: sig,
        // Runtime and translated code are linked into one range (hcontainer_abi::layout).
        colocated: true,
        patchable: false,
    })
}

impl Tr<'_, '_> {
    /// Call runtime entry point `which` with `args`.
    pub(super) fn call_rt(&mut self, which: Import, args: &[CValue]) -> ir::Inst {
        match &self.refs.rt {
            RtRefs::Direct(f) => {
                let f = f[which as usize];
                self.b.ins().call(f, args)
            }
            RtRefs::Imported(sigs) => {
                let sig = sigs[which as usize];
                let header = self.sh.unit.expect("imported runtime calls are made by units only");
                let hdr = self.data_addr(header);
                let flags = state_flags().with_readonly();
                let at = IMPORTS_OFFSET as i32 + 8 * which as i32;
                let f = self.b.ins().load(types::I64, flags, hdr, at);
                self.b.ins().call_indirect(sig, f, args)
            }
        }
    }

    /// After a native call into translated code (state already written back by the callee):
    /// continue at `ret` if the callee returned there, else return what it returned.
    pub(super) fn after_call(&mut self, r: CValue, ret: u64) {
        match self.block_of(ret) {
            Some((_, cb)) => {
                let is_ret = match self.bias {
                    None => self.b.ins().icmp_imm_u(CIntCC::Equal, r, ret as i64),
                    Some(_) => {
                        let expected = self.gaddr(ret);
                        self.b.ins().icmp(CIntCC::Equal, r, expected)
                    }
                };
                let (cont, out) = (self.b.create_block(), self.b.create_block());
                self.b.ins().brif(is_ret, cont, &[], out, &[]);
                self.b.switch_to_block(out);
                self.b.seal_block(out);
                self.b.ins().return_(&[r]);
                self.b.switch_to_block(cont);
                self.b.seal_block(cont);
                if !self.local {
                    let live = self.live.as_ref().and_then(|l| l.at(&self.blocks, ret));
                    self.reload(live);
                }
                self.b.ins().jump(cb, &[]);
            }
            None => {
                self.b.ins().return_(&[r]);
            }
        }
    }

    pub(super) fn callee(&mut self, id: FuncId) -> FuncRef {
        if let Some(&r) = self.callees.get(&id) {
            return r;
        }
        let sig = translated_sig(self.sh.call_conv);
        let r = import(self.b.func, id, sig);
        self.callees.insert(id, r);
        r
    }
}
