//! Register decoding shared by every Modbus profile: value types and word orders,
//! the read planner that groups registers into as few transactions as the protocol
//! allows, and lookup of a value's words in the blocks that were read.

use serde::{Deserialize, Serialize};

/// The Modbus application protocol caps a Read Holding/Input Registers response at
/// 125 registers (Modbus Application Protocol v1.1b3, §6.3 and §6.4).
pub const MAX_READ_REGISTERS: u16 = 125;

/// Size of a Modbus register space: addresses are 16 bits.
const SPACE: u32 = 1 << 16;

/// Which register table a value lives in, i.e. which function code reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterKind {
    /// Function code 0x03.
    Holding,
    /// Function code 0x04.
    Input,
}

impl RegisterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Holding => "holding",
            RegisterKind::Input => "input",
        }
    }

    /// The Modbus function code that reads this table.
    pub fn function_code(self) -> u8 {
        match self {
            RegisterKind::Holding => 0x03,
            RegisterKind::Input => 0x04,
        }
    }
}

/// How a value is encoded in consecutive registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    Int16,
    Uint16,
    Int32,
    Uint32,
    /// IEEE 754 single precision.
    Float32,
    /// An unsigned 32-bit accumulator (SunSpec `acc32`): decodes like `uint32`.
    Acc32,
    Uint64,
}

impl ValueType {
    /// Number of 16-bit registers the value occupies.
    pub fn words(self) -> u16 {
        match self {
            ValueType::Int16 | ValueType::Uint16 => 1,
            ValueType::Int32 | ValueType::Uint32 | ValueType::Float32 | ValueType::Acc32 => 2,
            ValueType::Uint64 => 4,
        }
    }
}

/// Order of the 16-bit words of a multi-register value. Bytes inside a register are
/// always big-endian, as the protocol transmits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WordOrder {
    /// Most significant word first (Modbus convention, SunSpec, Eastron).
    #[default]
    #[serde(rename = "ABCD")]
    Abcd,
    /// Least significant word first ("word swapped", e.g. Carlo Gavazzi EM24). For
    /// 64-bit values the four words are fully reversed.
    #[serde(rename = "CDAB")]
    Cdab,
}

/// Joins the first `n` words into an integer, most significant word first.
fn join(order: WordOrder, words: &[u16], n: usize) -> Option<u64> {
    let words = words.get(..n)?;
    let fold = |acc: u64, w: &u16| (acc << 16) | u64::from(*w);
    Some(match order {
        WordOrder::Abcd => words.iter().fold(0, fold),
        WordOrder::Cdab => words.iter().rev().fold(0, fold),
    })
}

/// Decodes a raw value, without treating any bit pattern as "not implemented".
/// Returns `None` only when fewer words than the type needs are given. A float32 NaN
/// is returned as NaN.
pub fn decode_value(ty: ValueType, order: WordOrder, words: &[u16]) -> Option<f64> {
    let raw = join(order, words, usize::from(ty.words()))?;
    // The casts below reinterpret the joined bits at the type's width, which is the
    // point of decoding.
    Some(match ty {
        ValueType::Int16 => f64::from(raw as u16 as i16),
        ValueType::Uint16 => f64::from(raw as u16),
        ValueType::Int32 => f64::from(raw as u32 as i32),
        ValueType::Uint32 | ValueType::Acc32 => f64::from(raw as u32),
        ValueType::Float32 => f64::from(f32::from_bits(raw as u32)),
        ValueType::Uint64 => raw as f64,
    })
}

/// Decodes a SunSpec point (always big-endian, ABCD), mapping the "not implemented"
/// sentinels of the SunSpec Information Model Specification to `None`: int16 0x8000,
/// uint16 0xFFFF, int32 0x80000000, uint32 0xFFFFFFFF, acc32 0, float32 NaN,
/// uint64 0xFFFFFFFFFFFFFFFF.
pub fn decode_sunspec_value(ty: ValueType, words: &[u16]) -> Option<f64> {
    let raw = join(WordOrder::Abcd, words, usize::from(ty.words()))?;
    let unimplemented = match ty {
        ValueType::Int16 => raw == 0x8000,
        ValueType::Uint16 => raw == 0xFFFF,
        ValueType::Int32 => raw == 0x8000_0000,
        ValueType::Uint32 => raw == 0xFFFF_FFFF,
        ValueType::Acc32 => raw == 0,
        ValueType::Float32 => f32::from_bits(raw as u32).is_nan(),
        ValueType::Uint64 => raw == u64::MAX,
    };
    if unimplemented {
        None
    } else {
        decode_value(ty, WordOrder::Abcd, words)
    }
}

/// Encodes a value the way [`decode_value`] reads it back; integers are rounded and
/// saturate at the type's range. Used by the simulators and tests.
pub fn encode_value(ty: ValueType, order: WordOrder, value: f64) -> Vec<u16> {
    // `as` from f64 saturates and maps NaN to 0, which is what a simulator wants.
    let raw: u64 = match ty {
        ValueType::Int16 => u64::from(value.round() as i16 as u16),
        ValueType::Uint16 => u64::from(value.round() as u16),
        ValueType::Int32 => u64::from(value.round() as i32 as u32),
        ValueType::Uint32 | ValueType::Acc32 => u64::from(value.round() as u32),
        ValueType::Float32 => u64::from((value as f32).to_bits()),
        ValueType::Uint64 => value.round() as u64,
    };
    let n = usize::from(ty.words());
    let mut words: Vec<u16> = (0..n).map(|i| (raw >> (16 * (n - 1 - i))) as u16).collect();
    if order == WordOrder::Cdab {
        words.reverse();
    }
    words
}

/// One read transaction: `count` registers of `kind` from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadBlock {
    pub kind: RegisterKind,
    pub start: u16,
    pub count: u16,
}

impl ReadBlock {
    /// One past the last register, as u32 so that a block ending at 0xFFFF fits.
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }

    /// Whether the block holds registers `addr .. addr + n` of `kind`.
    pub fn contains(&self, kind: RegisterKind, addr: u16, n: u16) -> bool {
        kind == self.kind && addr >= self.start && u32::from(addr) + u32::from(n) <= self.end()
    }
}

/// Groups register ranges `(kind, address, words)` into read transactions.
///
/// Ranges of the same kind that overlap or touch are merged, gaps of at most
/// `max_gap` registers are read through (one longer request is cheaper than two
/// round trips on a serial gateway), and no block exceeds `max_registers` (at most
/// [`MAX_READ_REGISTERS`]; some meters accept fewer). Kinds (function codes) are
/// never merged. Every range of at most `max_registers` words lands whole in one
/// block, so [`words`] can find it; longer ranges are split. Ranges of zero words
/// are ignored and ranges running past 0xFFFF are cut at the end of the space.
/// The result is sorted by kind, then start.
///
/// Taking ranges in address order and extending the current block while the next
/// range fits is optimal: no plan under the same limits uses fewer transactions
/// (the first block of any plan ends no later than the greedy one, and so on).
pub fn plan_reads(
    regs: impl IntoIterator<Item = (RegisterKind, u16, u16)>,
    max_gap: u16,
    max_registers: u16,
) -> Vec<ReadBlock> {
    let max = u32::from(max_registers.clamp(1, MAX_READ_REGISTERS));
    let mut ranges: Vec<(RegisterKind, u32, u32)> = Vec::new();
    for (kind, addr, n) in regs {
        let start = u32::from(addr);
        let end = (start + u32::from(n)).min(SPACE);
        // Split what cannot fit one request; values are at most 4 words in practice.
        let mut s = start;
        while s < end {
            let e = (s + max).min(end);
            ranges.push((kind, s, e));
            s = e;
        }
    }
    ranges.sort_unstable();

    let mut blocks = Vec::new();
    let mut current: Option<(RegisterKind, u32, u32)> = None;
    for (kind, start, end) in ranges {
        current = match current {
            Some((k, s, e))
                if k == kind && start <= e + u32::from(max_gap) && end.max(e) - s <= max =>
            {
                Some((k, s, end.max(e)))
            }
            Some(done) => {
                blocks.push(done);
                Some((kind, start, end))
            }
            None => Some((kind, start, end)),
        };
    }
    blocks.extend(current);
    blocks
        .into_iter()
        // Bounds hold by construction: start < 2^16 and end - start <= 125.
        .map(|(kind, s, e)| ReadBlock {
            kind,
            start: s as u16,
            count: (e - s) as u16,
        })
        .collect()
}

/// The words of registers `addr .. addr + n` of `kind`, from the first block read
/// that holds them all. A block whose response came back shorter than asked only
/// answers for the registers it actually holds.
pub fn words(
    blocks: &[(ReadBlock, Vec<u16>)],
    kind: RegisterKind,
    addr: u16,
    n: u16,
) -> Option<&[u16]> {
    blocks.iter().find_map(|(block, data)| {
        if !block.contains(kind, addr, n) {
            return None;
        }
        let from = usize::from(addr - block.start);
        data.get(from..from + usize::from(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_each_type_in_both_word_orders() {
        assert_eq!(
            decode_value(ValueType::Int16, WordOrder::Abcd, &[0xFFFE]),
            Some(-2.0)
        );
        assert_eq!(
            decode_value(ValueType::Uint16, WordOrder::Abcd, &[0xFFFE]),
            Some(65534.0)
        );
        assert_eq!(
            decode_value(ValueType::Int32, WordOrder::Abcd, &[0xFFFF, 0xFFFE]),
            Some(-2.0)
        );
        assert_eq!(
            decode_value(ValueType::Int32, WordOrder::Cdab, &[0xFFFE, 0xFFFF]),
            Some(-2.0)
        );
        assert_eq!(
            decode_value(ValueType::Uint32, WordOrder::Abcd, &[0x0001, 0x0002]),
            Some(65538.0)
        );
        assert_eq!(
            decode_value(ValueType::Uint32, WordOrder::Cdab, &[0x0002, 0x0001]),
            Some(65538.0)
        );
        // 230.5 = 0x43668000
        assert_eq!(
            decode_value(ValueType::Float32, WordOrder::Abcd, &[0x4366, 0x8000]),
            Some(230.5)
        );
        assert_eq!(
            decode_value(ValueType::Float32, WordOrder::Cdab, &[0x8000, 0x4366]),
            Some(230.5)
        );
        assert_eq!(
            decode_value(ValueType::Uint64, WordOrder::Abcd, &[0, 0, 1, 2]),
            Some(65538.0)
        );
        assert_eq!(
            decode_value(ValueType::Uint64, WordOrder::Cdab, &[2, 1, 0, 0]),
            Some(65538.0)
        );
        assert_eq!(decode_value(ValueType::Uint32, WordOrder::Abcd, &[1]), None);
    }

    #[test]
    fn raw_decoding_keeps_sentinels_and_sunspec_decoding_drops_them() {
        assert_eq!(
            decode_value(ValueType::Int16, WordOrder::Abcd, &[0x8000]),
            Some(-32768.0)
        );
        assert_eq!(decode_sunspec_value(ValueType::Int16, &[0x8000]), None);
        assert_eq!(decode_sunspec_value(ValueType::Uint16, &[0xFFFF]), None);
        assert_eq!(
            decode_sunspec_value(ValueType::Int32, &[0x8000, 0x0000]),
            None
        );
        assert_eq!(
            decode_sunspec_value(ValueType::Uint32, &[0xFFFF, 0xFFFF]),
            None
        );
        assert_eq!(decode_sunspec_value(ValueType::Acc32, &[0, 0]), None);
        assert_eq!(
            decode_sunspec_value(ValueType::Float32, &[0x7FC0, 0x0000]),
            None
        );
        assert_eq!(decode_sunspec_value(ValueType::Uint64, &[0xFFFF; 4]), None);
        assert_eq!(
            decode_sunspec_value(ValueType::Int16, &[0x8001]),
            Some(-32767.0)
        );
        assert_eq!(decode_sunspec_value(ValueType::Acc32, &[0, 7]), Some(7.0));
        assert_eq!(decode_sunspec_value(ValueType::Uint16, &[0]), Some(0.0));
    }

    #[test]
    fn contiguous_and_overlapping_ranges_merge_and_kinds_stay_apart() {
        let plan = plan_reads(
            [
                (RegisterKind::Input, 4, 2),
                (RegisterKind::Input, 0, 2),
                (RegisterKind::Input, 2, 2),
                (RegisterKind::Input, 5, 2),
                (RegisterKind::Holding, 0, 1),
            ],
            0,
            MAX_READ_REGISTERS,
        );
        assert_eq!(
            plan,
            vec![
                ReadBlock {
                    kind: RegisterKind::Holding,
                    start: 0,
                    count: 1
                },
                ReadBlock {
                    kind: RegisterKind::Input,
                    start: 0,
                    count: 7
                },
            ]
        );
    }

    #[test]
    fn gaps_are_bridged_only_up_to_max_gap() {
        let regs = [(RegisterKind::Input, 0, 2), (RegisterKind::Input, 10, 2)];
        assert_eq!(plan_reads(regs, 8, MAX_READ_REGISTERS).len(), 1);
        assert_eq!(plan_reads(regs, 7, MAX_READ_REGISTERS).len(), 2);
    }

    #[test]
    fn blocks_never_exceed_125_registers() {
        let plan = plan_reads(
            [
                (RegisterKind::Holding, 0, 2),
                (RegisterKind::Holding, 124, 2),
            ],
            200,
            MAX_READ_REGISTERS,
        );
        assert_eq!(
            plan,
            vec![
                ReadBlock {
                    kind: RegisterKind::Holding,
                    start: 0,
                    count: 2
                },
                ReadBlock {
                    kind: RegisterKind::Holding,
                    start: 124,
                    count: 2
                },
            ]
        );
        let long = plan_reads([(RegisterKind::Holding, 40000, 300)], 0, MAX_READ_REGISTERS);
        assert_eq!(long.iter().map(|b| b.count).sum::<u16>(), 300);
        assert!(long.iter().all(|b| b.count <= 125));
    }

    #[test]
    fn ranges_at_the_end_of_the_space_are_cut() {
        let plan = plan_reads([(RegisterKind::Input, 0xFFFE, 4)], 0, MAX_READ_REGISTERS);
        assert_eq!(
            plan,
            vec![ReadBlock {
                kind: RegisterKind::Input,
                start: 0xFFFE,
                count: 2
            }]
        );
    }

    #[test]
    fn words_are_found_in_the_block_that_holds_them() {
        let block = ReadBlock {
            kind: RegisterKind::Input,
            start: 10,
            count: 4,
        };
        let blocks = vec![(block, vec![1, 2, 3, 4])];
        assert_eq!(
            words(&blocks, RegisterKind::Input, 12, 2),
            Some(&[3, 4][..])
        );
        assert_eq!(words(&blocks, RegisterKind::Input, 13, 2), None);
        assert_eq!(words(&blocks, RegisterKind::Holding, 10, 1), None);
        // A short response answers only for what it holds.
        let short = vec![(block, vec![1, 2])];
        assert_eq!(words(&short, RegisterKind::Input, 12, 1), None);
    }

    fn kind() -> impl Strategy<Value = RegisterKind> {
        prop_oneof![Just(RegisterKind::Holding), Just(RegisterKind::Input)]
    }

    proptest! {
        #[test]
        fn every_requested_register_is_covered_by_one_block(
            regs in proptest::collection::vec((kind(), 0u16..2000, 1u16..=4), 0..60),
            max_gap in 0u16..40,
        ) {
            let plan = plan_reads(regs.iter().copied(), max_gap, MAX_READ_REGISTERS);
            for b in &plan {
                prop_assert!(b.count >= 1 && b.count <= MAX_READ_REGISTERS);
            }
            for w in plan.windows(2) {
                prop_assert!((w[0].kind, w[0].start) < (w[1].kind, w[1].start));
            }
            for (k, addr, n) in regs {
                prop_assert!(
                    plan.iter().any(|b| b.contains(k, addr, n)),
                    "{k:?} {addr}+{n} not covered by {plan:?}"
                );
            }
        }

        #[test]
        fn encoding_round_trips(v in -30000i32..30000, order in prop_oneof![Just(WordOrder::Abcd), Just(WordOrder::Cdab)]) {
            for ty in [ValueType::Int16, ValueType::Int32, ValueType::Float32] {
                let w = encode_value(ty, order, f64::from(v));
                prop_assert_eq!(decode_value(ty, order, &w), Some(f64::from(v)));
            }
            let u = f64::from(v.unsigned_abs());
            for ty in [ValueType::Uint16, ValueType::Uint32, ValueType::Acc32, ValueType::Uint64] {
                let w = encode_value(ty, order, u);
                prop_assert_eq!(decode_value(ty, order, &w), Some(u));
            }
        }
    }
}
