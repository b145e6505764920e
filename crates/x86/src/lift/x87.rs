//! x87 instructions: which x87 operation (an `hcontainer_semantics` x87 op id) an iced-x86
//! instruction is, for the `Helper::X87` call the lifter emits.

use iced_x86::{Code, Instruction};

/// The x87 op id of `instr` (with code `code`), or `None` if it is not an x87 instruction
/// the helper implements.
pub fn x87_op(code: Code, instr: &Instruction) -> Option<u32> {
    let _ = (code, instr);
    None
}
