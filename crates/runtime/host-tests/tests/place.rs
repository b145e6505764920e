//! The guest mapping placer: top-down below the guest stack, holes reused, collisions skipped.

use hcontainer_runtime_host_tests::place::{Placer, Source, FLOOR, TOP};

const P: u64 = 4096;

fn take(p: &mut Placer, len: u64) -> u64 {
    let (at, src) = p.candidate(len).expect("room");
    p.taken(at, len, src);
    at
}

#[test]
fn allocates_top_down_from_top() {
    let mut p = Placer::new();
    assert_eq!(take(&mut p, 2 * P), TOP - 2 * P);
    assert_eq!(take(&mut p, P), TOP - 3 * P);
}

#[test]
fn area_lies_in_x86_user_space_above_the_runtime() {
    const { assert!(TOP < 0x7fff_ffff_f000 && FLOOR < TOP) };
}

#[test]
fn unmapped_ranges_are_reused_first_fit_and_merged() {
    let mut p = Placer::new();
    let a = take(&mut p, 4 * P);
    let b = take(&mut p, 4 * P);
    let _c = take(&mut p, 4 * P);
    p.freed(a, 4 * P);
    p.freed(b, 4 * P); // adjacent to a's hole: one 8-page hole at b
    assert_eq!(p.candidate(8 * P), Some((b, Source::Hole(0))));
    assert_eq!(take(&mut p, 2 * P), b);
    assert_eq!(take(&mut p, 6 * P), b + 2 * P);
    // Hole used up: next comes from the cursor again.
    assert_eq!(p.candidate(P).map(|c| c.1), Some(Source::Cursor));
}

#[test]
fn freeing_at_the_cursor_moves_it_up() {
    let mut p = Placer::new();
    let a = take(&mut p, P);
    let b = take(&mut p, P);
    p.freed(a, P); // hole above b
    p.freed(b, P); // at the cursor: cursor rises through the hole to TOP
    assert_eq!(p.candidate(P), Some((TOP - P, Source::Cursor)));
}

#[test]
fn collisions_skip_downwards_and_drop_holes() {
    let mut p = Placer::new();
    let (at, src) = p.candidate(P).unwrap();
    p.collided(at, src);
    assert_eq!(p.candidate(P), Some((at - P, Source::Cursor)));
    let a = take(&mut p, P);
    let _b = take(&mut p, P);
    p.freed(a, P);
    let (h, src) = p.candidate(P).unwrap();
    assert_eq!((h, src), (a, Source::Hole(0)));
    p.collided(h, src);
    assert_eq!(p.candidate(P).map(|c| c.1), Some(Source::Cursor));
}

#[test]
fn ranges_outside_the_handed_out_area_are_ignored() {
    let mut p = Placer::new();
    let _a = take(&mut p, P);
    p.freed(0x40_0000, P); // below the cursor: never ours
    p.freed(TOP, P); // above TOP
    assert_eq!(p.candidate(P).map(|c| c.1), Some(Source::Cursor));
}

#[test]
fn exhaustion_returns_none() {
    let p = Placer::new();
    assert_eq!(p.candidate(TOP - FLOOR + P), None);
    assert!(p.candidate(TOP - FLOOR).is_some());
}
