use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn stack(seed: u64) -> CallStack {
    core::array::from_fn(|i| if i < 3 { seed * 100 + i as u64 } else { 0 })
}

#[test]
fn depot_keeps_each_stack_once() {
    let mut stacks = vec![[0u64; STACK_DEPTH]; 4];
    let mut index = vec![0u16; 8];
    let mut depot = StackDepot::new(&mut stacks, &mut index);
    let a = depot.intern(&stack(1));
    let b = depot.intern(&stack(2));
    assert_ne!(a, b);
    assert_eq!(depot.intern(&stack(1)), a);
    assert_eq!(depot.get(a), Some(&stack(1)));
    assert_eq!(depot.get(b), Some(&stack(2)));
    assert_eq!(depot.len(), 2);
    depot.intern(&stack(3));
    depot.intern(&stack(4));
    assert_eq!(depot.intern(&stack(5)), StackId::NONE);
    assert_eq!(depot.refused(), 1);
    // Known stacks are still found when full.
    assert_eq!(depot.intern(&stack(2)), b);
    assert_eq!(depot.get(StackId::NONE), None);
}

#[test]
fn trace_table_refuses_past_seven_eighths() {
    let mut slots = vec![Trace::default(); 16];
    let mut table = TraceTable::new(&mut slots);
    for i in 1..=14 {
        table.insert(Trace::new(i * 16, 0, StackId(0))).unwrap();
    }
    assert_eq!(
        table.insert(Trace::new(15 * 16, 0, StackId(0))),
        Err(TraceTableFull)
    );
    // Replacing an entry is not growth.
    table.insert(Trace::new(16, 9, StackId(1))).unwrap();
    assert_eq!(table.get(16).map(|t| t.born_ms), Some(9));
    assert_eq!(table.len(), 14);
}

proptest! {
    /// The table agrees with a map through any mix of inserts and removes
    /// (the backward shift keeps every entry findable).
    #[test]
    fn trace_table_matches_a_map(ops in prop::collection::vec((any::<bool>(), 1u64..200), 1..400)) {
        let mut slots = vec![Trace::default(); 256];
        let mut table = TraceTable::new(&mut slots);
        let mut model: HashMap<u64, u32> = HashMap::new();
        for (n, (insert, key)) in ops.into_iter().enumerate() {
            let addr = 0xffff_c000_0000_0000 + key * 16;
            if insert {
                table.insert(Trace::new(addr, n as u32, StackId(1))).unwrap();
                model.insert(addr, n as u32);
            } else {
                prop_assert_eq!(table.remove(addr).map(|t| t.born_ms), model.remove(&addr));
            }
            prop_assert_eq!(table.len(), model.len());
        }
        for key in 1u64..200 {
            let addr = 0xffff_c000_0000_0000 + key * 16;
            prop_assert_eq!(table.get(addr).map(|t| t.born_ms), model.get(&addr).copied());
        }
    }
}

/// A toy memory: blocks at fixed addresses holding words.
struct World {
    blocks: Vec<(u64, Vec<u64>)>,
}

impl World {
    fn candidates(&self) -> Vec<Candidate> {
        self.blocks
            .iter()
            .map(|(start, words)| Candidate {
                start: *start,
                end: start + 8 * words.len() as u64,
                ..Candidate::default()
            })
            .collect()
    }

    fn words_at(&self, start: u64) -> &[u64] {
        &self.blocks.iter().find(|(s, _)| *s == start).unwrap().1
    }

    /// Marks from `roots`; the starts of unmarked blocks.
    fn unreachable(&self, roots: &[u64]) -> Vec<u64> {
        let mut blocks = self.candidates();
        let mut gray = vec![0u32; blocks.len()];
        let mut marker = Marker::new(&mut blocks, &mut gray);
        marker.scan_words(roots);
        while let Some((start, _)) = marker.next_gray() {
            let words = self.words_at(start).to_vec();
            marker.scan_words(&words);
        }
        marker
            .blocks()
            .iter()
            .filter(|b| !b.marked)
            .map(|b| b.start)
            .collect()
    }
}

#[test]
fn marks_through_roots_blocks_and_interior_pointers() {
    let world = World {
        blocks: vec![
            (0x1000, vec![0x2008, 7]),    // -> interior of 0x2000
            (0x2000, vec![0, 0, 0x1000]), // -> 0x1000 (a cycle)
            (0x3000, vec![0x4000]),       // kept only by itself? no: by nothing
            (0x4000, vec![0x3000]),       // a cycle nothing points into
            (0x5000, vec![1, 2]),         // pointed to one past its end only
            (0x6000, vec![0]),
        ],
    };
    // Roots: the interior of 0x1000's second word, 0x5010 (= 0x5000's end)
    // and 0x6000 exactly.
    assert_eq!(
        world.unreachable(&[0x1008, 0x5010, 0x6000, 42]),
        vec![0x3000, 0x4000, 0x5000]
    );
    assert_eq!(world.unreachable(&[]).len(), 6);
    assert!(
        world
            .unreachable(&[0x3000, 0x1000, 0x5000, 0x6004])
            .is_empty()
    );
}

proptest! {
    /// Marking agrees with reachability computed by a plain graph search.
    #[test]
    fn marking_is_reachability(
        edges in prop::collection::vec(prop::collection::vec((0usize..12, 0u64..4), 0..4), 12),
        roots in prop::collection::vec((0usize..12, 0u64..4), 0..4),
    ) {
        let addr = |i: usize, off: u64| 0x10_000 + i as u64 * 0x100 + off * 8;
        let world = World {
            blocks: edges
                .iter()
                .enumerate()
                .map(|(i, out)| {
                    let mut words: Vec<u64> = out.iter().map(|&(j, off)| addr(j, off)).collect();
                    words.resize(4, 0);
                    (addr(i, 0), words)
                })
                .collect(),
        };
        let root_words: Vec<u64> = roots.iter().map(|&(i, off)| addr(i, off)).collect();
        let mut seen = [false; 12];
        let mut todo: Vec<usize> = roots.iter().map(|&(i, _)| i).collect();
        while let Some(i) = todo.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                todo.extend(edges[i].iter().map(|&(j, _)| j));
            }
        }
        let expect: Vec<u64> = (0..12).filter(|&i| !seen[i]).map(|i| addr(i, 0)).collect();
        prop_assert_eq!(world.unreachable(&root_words), expect);
    }
}
