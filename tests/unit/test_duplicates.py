"""Duplicate scoring (多网融合): what merges automatically, what waits for the operator."""

from __future__ import annotations

from dispatch.duplicates import AUTO_MERGE, Candidate, Verdict, best_match, score

GARBAGE = "env.exposed_garbage"


def match(*cands: Candidate, title: str = "公益路暴露垃圾") -> tuple[int, Verdict] | None:
    m = best_match(category=GARBAGE, title=title, radius_m=50, window_h=24, candidates=cands)
    return None if m is None else (m.case_id, m.verdict)


def test_same_problem_from_another_system_merges() -> None:
    assert match(Candidate(7, GARBAGE, 3.0, 0.5, "公益路垃圾堆放")) == (7, Verdict.merge)


def test_same_group_other_category_is_only_a_possible_duplicate() -> None:
    # Even identical wording and place: a different category is never merged without a person.
    assert match(Candidate(7, "env.road_not_clean", 0.0, 0.0, "公益路暴露垃圾")) == (7, Verdict.possible)


def test_at_the_edge_of_radius_and_window_with_other_wording_stands_alone() -> None:
    assert match(Candidate(7, GARBAGE, 49.0, 23.0, "树木倒伏阻塞道路")) is None


def test_best_candidate_wins_and_ties_go_to_the_older_case() -> None:
    near = Candidate(9, GARBAGE, 2.0, 0.1, "公益路暴露垃圾")
    far = Candidate(4, GARBAGE, 40.0, 10.0, "公益路暴露垃圾")
    assert match(far, near) == (9, Verdict.merge)
    twin = Candidate(3, GARBAGE, 2.0, 0.1, "公益路暴露垃圾")
    assert match(near, twin) == (3, Verdict.merge)
    assert match(twin, near) == (3, Verdict.merge)


def test_scores_are_bounded_and_monotonic_in_distance() -> None:
    base = dict(category=GARBAGE, title="公益路暴露垃圾", radius_m=50.0, window_h=24.0)
    s = [score(**base, candidate=Candidate(1, GARBAGE, d, 1.0, "公益路暴露垃圾")) for d in (0, 10, 25, 50)]  # type: ignore[arg-type]
    assert s == sorted(s, reverse=True) and 0 <= s[-1] <= s[0] <= 1
    assert s[0] >= AUTO_MERGE
