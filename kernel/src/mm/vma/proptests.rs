//! Property tests of the VMA set against a model: a map from page number to
//! the attributes of the page. Random sequences of insert, remove_range,
//! protect_range, find_gap and grow_down on a small set must give exactly
//! the results the model predicts, and after every step the set must be the
//! model's maximal runs of equal pages (sorted, disjoint, merged), with
//! every probed address found as the model says and the bytes accounted
//! for. An operation refused for lack of slots must leave the set as it was.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::mm::paging::{PAGE_SIZE, VirtAddr};

const P: u64 = PAGE_SIZE;
/// First page of the area the operations play in.
const BASE: u64 = 16;
/// Pages in that area.
const SPAN: u64 = 64;
/// Slots in the set under test: small, so that splits run out of room.
const CAPACITY: usize = 6;
/// The guard gap of the set under test, in pages.
const GUARD: u64 = 2;

/// What the model keeps for each mapped page.
type Attr = (VmFlags, VmaKind, u32);
/// Page number to attributes.
type Model = BTreeMap<u64, Attr>;

/// One step.
#[derive(Debug, Clone)]
enum Op {
    Insert {
        first: u64,
        n: u64,
        attr: Attr,
    },
    Remove {
        first: u64,
        n: u64,
    },
    Protect {
        first: u64,
        n: u64,
        prot: VmFlags,
    },
    FindGap {
        n: u64,
        hint: Option<u64>,
        lo: u64,
        hi: u64,
    },
    GrowDown {
        page: u64,
        new_first: u64,
    },
}

fn attr() -> impl Strategy<Value = Attr> {
    let r = VmFlags::READ;
    let rw = r | VmFlags::WRITE;
    let flags = prop_oneof![
        3 => Just(rw),
        2 => Just(r),
        1 => Just(r | VmFlags::EXEC),
        2 => Just(rw | VmFlags::GROWSDOWN),
        1 => Just(rw | VmFlags::GROWSUP),
        1 => Just(r | VmFlags::SHARED),
    ];
    let kind = prop_oneof![
        Just(VmaKind::Heap),
        Just(VmaKind::Mmap),
        Just(VmaKind::Stack)
    ];
    (flags, kind, 0..2_u32)
}

fn prot() -> impl Strategy<Value = VmFlags> {
    (0..8_u32).prop_map(VmFlags::from_bits_truncate)
}

fn page() -> impl Strategy<Value = u64> {
    BASE..BASE + SPAN
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (page(), 1..9_u64, attr()).prop_map(|(first, n, attr)| Op::Insert { first, n, attr }),
        2 => (page(), 1..12_u64).prop_map(|(first, n)| Op::Remove { first, n }),
        2 => (page(), 1..10_u64, prot()).prop_map(|(first, n, prot)| Op::Protect { first, n, prot }),
        2 => (1..10_u64, proptest::option::of(BASE * P..(BASE + SPAN) * P), page(), page())
            .prop_map(|(n, hint, a, b)| Op::FindGap { n, hint, lo: a.min(b), hi: a.max(b) + 1 }),
        1 => (page(), page()).prop_map(|(page, new_first)| Op::GrowDown { page, new_first }),
    ]
}

fn v(page: u64) -> VirtAddr {
    VirtAddr::new(page * P)
}

/// The model's VMAs: maximal runs of consecutive pages with equal attributes.
fn runs(model: &Model) -> Vec<Vma> {
    let mut out: Vec<Vma> = Vec::new();
    for (&page, &(flags, kind, id)) in model {
        match out.last_mut() {
            Some(last)
                if last.end == v(page) && (last.flags, last.kind, last.id) == (flags, kind, id) =>
            {
                last.end = v(page + 1);
            }
            _ => out.push(Vma {
                start: v(page),
                end: v(page + 1),
                flags,
                kind,
                id,
            }),
        }
    }
    out
}

/// The runs of `model` clipped to pages `[first, last)`.
fn clipped(model: &Model, first: u64, last: u64) -> Vec<Vma> {
    runs(model)
        .into_iter()
        .filter_map(|r| r.clip(v(first), v(last)))
        .collect()
}

/// The run containing `page`.
fn run_at(model: &Model, page: u64) -> Option<Vma> {
    runs(model).into_iter().find(|r| r.contains(v(page)))
}

/// Where `find_gap` must place `n` pages: the hint if it fits, else the
/// highest page that fits, by brute force over pages.
fn model_gap(model: &Model, n: u64, hint: Option<u64>, lo: u64, hi: u64) -> Option<u64> {
    let fits = |a: u64| {
        if a < lo || a + n > hi || (a..a + n).any(|p| model.contains_key(&p)) {
            return false;
        }
        let above = model.range(a + n..).next();
        let below = model.range(..a).next_back();
        let above_ok = above
            .is_none_or(|(&p, (f, _, _))| !f.contains(VmFlags::GROWSDOWN) || p >= a + n + GUARD);
        let below_ok =
            below.is_none_or(|(&p, (f, _, _))| !f.contains(VmFlags::GROWSUP) || a >= p + 1 + GUARD);
        above_ok && below_ok
    };
    if let Some(h) = hint.map(|h| h.div_ceil(P))
        && fits(h)
    {
        return Some(h);
    }
    (lo..hi).rev().find(|&a| fits(a))
}

/// Distance from `addr` to the nearest byte of `vma`.
fn distance(vma: &Vma, addr: u64) -> u64 {
    if addr < vma.start.as_u64() {
        vma.start.as_u64() - addr
    } else {
        addr.saturating_sub(vma.end.as_u64() - 1)
    }
}

type Set = VmaSet<[Vma; CAPACITY]>;

/// Checks the whole set against the model.
fn check(set: &Set, model: &Model) -> Result<(), TestCaseError> {
    let expected = runs(model);
    prop_assert_eq!(set.as_slice(), &expected[..]);
    prop_assert_eq!(set.len(), expected.len());
    prop_assert_eq!(set.mapped_bytes(), model.len() as u64 * P);
    for window in set.as_slice().windows(2) {
        prop_assert!(window[0].end <= window[1].start, "overlap or disorder");
        prop_assert!(!window[0].merges_with(&window[1]), "not merged");
    }
    for page in BASE - 2..BASE + SPAN + 12 {
        for offset in [0, 1, P - 1] {
            let addr = VirtAddr::new(page * P + offset);
            let found = set.find(addr);
            prop_assert_eq!(
                found.is_some(),
                model.contains_key(&page),
                "find {:?}",
                addr
            );
            if let Some(vma) = found {
                prop_assert!(vma.contains(addr));
                prop_assert_eq!((vma.flags, vma.kind, vma.id), model[&page]);
            }
            let nearest = set.nearest(addr);
            prop_assert_eq!(nearest.is_some(), !model.is_empty());
            if let Some(near) = nearest {
                let best = expected.iter().map(|r| distance(r, addr.as_u64())).min();
                prop_assert_eq!(Some(distance(near, addr.as_u64())), best);
            }
        }
    }
    Ok(())
}

/// The expected result of a step that changes the model to `next`: the
/// result of `ok` when the runs fit, `Full` otherwise.
fn fits<T>(next: &Model, ok: T) -> Result<T, VmaError> {
    if runs(next).len() <= CAPACITY {
        Ok(ok)
    } else {
        Err(VmaError::Full { capacity: CAPACITY })
    }
}

fn step(set: &mut Set, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let before = set.as_slice().to_vec();
    let mut next = model.clone();
    let changed = match *op {
        Op::Insert {
            first,
            n,
            attr: (flags, kind, id),
        } => {
            let vma = Vma::new(v(first), v(first + n), flags, kind)
                .unwrap()
                .with_id(id);
            let got = set.insert(vma);
            let expected = match model.range(first..first + n).next() {
                Some((&p, _)) => Err(VmaError::Overlap(run_at(model, p).unwrap())),
                None => {
                    for p in first..first + n {
                        next.insert(p, (flags, kind, id));
                    }
                    fits(&next, run_at(&next, first).unwrap())
                }
            };
            prop_assert_eq!(got, expected);
            got.is_ok()
        }
        Op::Remove { first, n } => {
            let mut pieces = Vec::new();
            let got = set.remove_range(v(first), v(first + n), |p| pieces.push(p));
            let removed = clipped(model, first, first + n);
            for p in first..first + n {
                next.remove(&p);
            }
            let bytes = removed.iter().map(Vma::len).sum::<u64>();
            let expected = fits(&next, bytes);
            prop_assert_eq!(got, expected);
            let expected_pieces = if got.is_ok() { removed } else { Vec::new() };
            prop_assert_eq!(pieces, expected_pieces);
            got.is_ok()
        }
        Op::Protect { first, n, prot } => {
            let mut pieces = Vec::new();
            let got = set.protect_range(v(first), v(first + n), prot, |old, new| {
                pieces.push((old, new))
            });
            let expected = match (first..first + n).find(|p| !model.contains_key(p)) {
                Some(hole) => Err(VmaError::NotMapped(v(hole))),
                None => {
                    for p in first..first + n {
                        let attr = next.get_mut(&p).unwrap();
                        attr.0 = (attr.0 - VmFlags::ACCESS) | prot;
                    }
                    fits(&next, ())
                }
            };
            prop_assert_eq!(got, expected);
            let expected_pieces: Vec<(Vma, VmFlags)> = if got.is_ok() {
                clipped(model, first, first + n)
                    .into_iter()
                    .map(|old| (old, (old.flags - VmFlags::ACCESS) | prot))
                    .filter(|(old, new)| old.flags != *new)
                    .collect()
            } else {
                Vec::new()
            };
            prop_assert_eq!(pieces, expected_pieces);
            got.is_ok()
        }
        Op::FindGap { n, hint, lo, hi } => {
            let got = set.find_gap(n * P, hint.map(VirtAddr::new), v(lo), v(hi));
            let expected = model_gap(model, n, hint, lo, hi)
                .map(v)
                .ok_or(VmaError::NoSpace);
            prop_assert_eq!(got, expected);
            false
        }
        Op::GrowDown { page, new_first } => {
            let got = set.grow_down(v(page), v(new_first));
            let expected = match run_at(model, page) {
                None => Err(VmaError::NotMapped(v(page))),
                Some(vma) if !vma.flags.contains(VmFlags::GROWSDOWN) => {
                    Err(VmaError::NotGrowable(vma))
                }
                Some(vma) if v(new_first) >= vma.start => Ok(vma),
                Some(vma) => {
                    let first = vma.start.as_u64() / P;
                    match runs(model).into_iter().rev().find(|r| r.end <= vma.start) {
                        Some(prev) if prev.end.as_u64() / P + GUARD > new_first => {
                            Err(VmaError::GuardGap(prev))
                        }
                        _ => {
                            for p in new_first..first {
                                next.insert(p, (vma.flags, vma.kind, vma.id));
                            }
                            Ok(Vma {
                                start: v(new_first),
                                ..vma
                            })
                        }
                    }
                }
            };
            prop_assert_eq!(got, expected);
            got.is_ok()
        }
    };
    if changed {
        *model = next;
    } else {
        prop_assert_eq!(
            set.as_slice(),
            &before[..],
            "a refused or read-only step changed the set"
        );
    }
    check(set, model)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn vma_set_matches_a_page_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut set = VmaSet::with_guard_gap([Vma::UNUSED; CAPACITY], GUARD * P);
        let mut model = Model::new();
        for op in &ops {
            step(&mut set, &mut model, op)?;
        }
    }
}
