"""RECIST 1.1 rules: selection, sums, responses, matching, timelines."""

from __future__ import annotations

import pytest

from models.quantify import recist
from models.quantify.recist import (
    RecistRules,
    assess_timeline,
    classify_target_response,
    confirmation_needed,
    match_lesions,
    non_target_response,
    overall_response,
    select_targets,
    sum_of_diameters,
    target_diameter_mm,
)
from triallens.domain import LesionKind, LesionMeasurement, Response

R = Response


def lesion(
    lid: str,
    ld: float,
    sa: float | None = None,
    *,
    node: bool = False,
    organ: str | None = "liver",
    at: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> LesionMeasurement:
    return LesionMeasurement(
        lesion_id=lid,
        kind=LesionKind.NODE if node else LesionKind.LESION,
        organ="lymph node" if node else organ,
        longest_diameter_mm=ld,
        short_axis_mm=sa if sa is not None else ld * 0.6,
        centroid_mm=at,
        slice_index=0,
    )


# -- overall response table (RECIST 1.1 table 1 and 2), every row --------------


@pytest.mark.parametrize(
    ("target", "non_target", "new", "expected"),
    [
        (R.CR, R.CR, False, R.CR),
        (R.CR, None, False, R.CR),
        (R.CR, R.NON_CR_NON_PD, False, R.PR),
        (R.CR, R.NE, False, R.PR),
        (R.PR, R.CR, False, R.PR),
        (R.PR, R.NON_CR_NON_PD, False, R.PR),
        (R.PR, R.NE, False, R.PR),
        (R.PR, None, False, R.PR),
        (R.SD, R.CR, False, R.SD),
        (R.SD, R.NON_CR_NON_PD, False, R.SD),
        (R.SD, R.NE, False, R.SD),
        (R.NE, R.NON_CR_NON_PD, False, R.NE),
        (R.NE, R.CR, False, R.NE),
        (R.PD, R.CR, False, R.PD),
        (R.PD, R.NON_CR_NON_PD, True, R.PD),
        (R.CR, R.PD, False, R.PD),
        (R.SD, R.PD, False, R.PD),
        (R.CR, R.CR, True, R.PD),
        (R.PR, R.NON_CR_NON_PD, True, R.PD),
        # Non-target disease only (table 2).
        (None, R.CR, False, R.CR),
        (None, R.NON_CR_NON_PD, False, R.NON_CR_NON_PD),
        (None, R.NE, False, R.NE),
        (None, R.PD, False, R.PD),
        (None, R.NON_CR_NON_PD, True, R.PD),
        (None, None, False, R.NE),
    ],
)
def test_overall_response_table(target, non_target, new, expected):
    assert overall_response(target, non_target, new) is expected


def test_overall_response_rejects_a_non_target_category_as_target():
    with pytest.raises(ValueError):
        overall_response(R.NON_CR_NON_PD, R.CR, False)


# -- target selection -----------------------------------------------------------


def test_at_most_five_targets_and_two_per_organ():
    found = [
        lesion("L1", 50, organ="liver"),
        lesion("L2", 45, organ="liver"),
        lesion("L3", 40, organ="liver"),
        lesion("L4", 35, organ="lung"),
        lesion("L5", 30, organ="lung"),
        lesion("L6", 25, organ="adrenal"),
        lesion("L7", 22, organ="bone"),
        lesion("L8", 21, organ="kidney"),
    ]
    sel = select_targets(found)
    assert [m.lesion_id for m in sel.targets] == ["L1", "L2", "L4", "L5", "L6"]
    assert {m.lesion_id for m in sel.non_targets} == {"L3", "L7", "L8"}


def test_nodes_count_as_one_organ_and_need_15mm_short_axis():
    found = [
        lesion("N1", 30, 25, node=True),
        lesion("N2", 28, 20, node=True),
        lesion("N3", 26, 18, node=True),  # third node: non-target (organ full)
        lesion("N4", 20, 12, node=True),  # pathological, not measurable as target
        lesion("N5", 12, 8, node=True),  # normal node
        lesion("L1", 9.9, organ="lung"),  # below 10 mm: non-target
        lesion("L2", 10.0, organ="lung"),
    ]
    sel = select_targets(found)
    assert [m.lesion_id for m in sel.targets] == ["N1", "N2", "L2"]
    assert {m.lesion_id for m in sel.non_targets} == {"N3", "N4", "L1"}
    assert [m.lesion_id for m in sel.normal_nodes] == ["N5"]


def test_thick_slices_raise_the_minimum_size():
    assert recist.is_target_candidate(lesion("L", 12), slice_thickness_mm=5.0)
    assert not recist.is_target_candidate(lesion("L", 12), slice_thickness_mm=7.0)
    assert recist.is_target_candidate(lesion("L", 14), slice_thickness_mm=7.0)


def test_unknown_organs_are_each_their_own_organ():
    found = [lesion(f"L{n}", 20 + n, organ=None) for n in range(4)]
    assert len(select_targets(found).targets) == 4


def test_charter_can_override_the_limits():
    rules = RecistRules(max_targets=2, max_targets_per_organ=1)
    found = [lesion("A", 30, organ="x"), lesion("B", 20, organ="x")]
    found.append(lesion("C", 15, organ="y"))
    found.append(lesion("D", 14, organ="z"))
    assert [m.lesion_id for m in select_targets(found, rules).targets] == ["A", "C"]


# -- sum of diameters -----------------------------------------------------------


def test_sum_uses_ld_for_lesions_sa_for_nodes_too_small_and_disappeared():
    parts = [
        lesion("L1", 32.0),
        lesion("N1", 25.0, 17.0, node=True),
        lesion("L2", 3.0),  # present, too small to measure -> 5 mm
        None,  # disappeared -> 0
        lesion("N2", 9.0, 7.5, node=True),  # node keeps its real short axis
    ]
    assert target_diameter_mm(parts[2]) == 5.0
    assert target_diameter_mm(None) == 0.0
    assert sum_of_diameters(parts) == pytest.approx(32 + 17 + 5 + 0 + 7.5)


# -- target response thresholds -------------------------------------------------


@pytest.mark.parametrize(
    ("current", "baseline", "nadir", "resolved", "expected"),
    [
        (70.0, 100.0, 100.0, False, R.PR),  # exactly -30 %
        (70.1, 100.0, 100.0, False, R.SD),
        (120.0, 100.0, 100.0, False, R.PD),  # exactly +20 % and +20 mm
        (119.9, 100.0, 100.0, False, R.SD),
        (84.0, 100.0, 70.0, False, R.PD),  # +20 % over nadir, still below baseline
        (24.0, 50.0, 20.0, False, R.PR),  # +20 % over nadir but 4 mm: PR
        (25.0, 50.0, 20.0, False, R.PD),  # +25 % and 5 mm
        (0.0, 50.0, 20.0, True, R.CR),
        (15.0, 50.0, 15.0, True, R.CR),  # nodes below 10 mm keep a sum
    ],
)
def test_classify_target_response(current, baseline, nadir, resolved, expected):
    got = classify_target_response(
        current, baseline, nadir, all_targets_resolved=resolved
    )
    assert got is expected


def test_not_evaluated_target_gives_ne_unless_already_pd():
    kwargs = {"all_targets_resolved": False, "evaluable": False}
    assert classify_target_response(60, 100, 100, **kwargs) is R.NE
    assert classify_target_response(130, 100, 100, **kwargs) is R.PD


def test_non_target_response():
    base = [lesion("L1", 20), lesion("N1", 14, 12, node=True)]
    assert non_target_response([], 0.0) is None
    assert non_target_response([None, None], 32.0) is R.CR
    small_node = lesion("N1", 10, 8, node=True)
    assert non_target_response([None, small_node], 32.0) is R.CR
    assert non_target_response(base, 32.0) is R.NON_CR_NON_PD
    grown = [lesion("L1", 40), lesion("N1", 20, 16, node=True)]
    assert non_target_response(grown, 32.0) is R.PD  # 56 mm vs 32 mm


# -- confirmation ---------------------------------------------------------------


def test_confirmation_flags():
    assert confirmation_needed(R.PR, [], 56) is not None
    assert confirmation_needed(R.PR, [(R.PR, 56)], 84) is None
    assert confirmation_needed(R.PR, [(R.PR, 56)], 70) is not None  # < 28 days
    assert confirmation_needed(R.CR, [(R.PR, 56)], 112) is not None
    assert confirmation_needed(R.PR, [(R.CR, 56)], 112) is None
    assert confirmation_needed(R.PD, [], 30) is None
    assert confirmation_needed(R.SD, [], 30) is not None
    assert confirmation_needed(R.SD, [], 56) is None
    off = RecistRules(confirm_responses=False)
    assert confirmation_needed(R.PR, [], 56, off) is None


# -- matching -------------------------------------------------------------------


def test_matching_by_position_and_kind():
    before = [
        lesion("A", 20, at=(0, 0, 0)),
        lesion("B", 20, at=(50, 0, 0)),
        lesion("N", 20, 16, node=True, at=(0, 50, 0)),
    ]
    after = [
        lesion("x", 18, at=(48, 3, 2)),
        lesion("y", 18, at=(2, -1, 0)),
        lesion("z", 18, at=(0, 52, 0)),  # near the node, but a lesion
        lesion("w", 18, 16, node=True, at=(200, 0, 0)),  # a node far away
    ]
    assert match_lesions(before, after) == {"A": "y", "B": "x"}


# -- timelines ------------------------------------------------------------------


def _visit(sizes, shift=(0.0, 0.0, 0.0)):
    places = {"L1": (0, 0, 0), "L2": (80, 0, 0), "N1": (0, 80, 0), "NT": (0, 0, 90)}
    out = []
    for lid, size in sizes.items():
        if size is None:
            continue
        at = tuple(p + s for p, s in zip(places[lid], shift, strict=True))
        if lid.startswith("N") and lid != "NT":
            out.append(lesion(f"v{lid}", size + 5, size, node=True, at=at))
        else:
            out.append(lesion(f"v{lid}", size, organ=lid, at=at))
    return out


def test_timeline_pr_confirmed_then_pd_from_nadir():
    visits = [
        _visit({"L1": 30, "L2": 20, "N1": 20, "NT": 8}),  # SOD 70, NT 8 mm
        _visit({"L1": 20, "L2": 12, "N1": 14, "NT": 8}, (2, 1, -3)),  # 46: -34 %
        _visit({"L1": 18, "L2": 10, "N1": 12, "NT": 8}),  # 40: nadir
        _visit({"L1": 25, "L2": 12, "N1": 12, "NT": 8}),  # 49: +22.5 %, +9 mm
    ]
    res = assess_timeline(visits, [0, 56, 112, 168])
    assert res[0].overall_response is R.BASELINE
    assert res[0].sum_mm == pytest.approx(70)
    assert res[0].target_ids == ["T01", "T02", "T03"]
    assert res[1].sum_mm == pytest.approx(46)
    assert res[1].overall_response is R.PR
    assert res[1].confirmation is not None
    assert res[1].percent_change_from_baseline == pytest.approx(-34.29)
    assert res[2].overall_response is R.PR
    assert res[2].confirmation is None
    assert res[3].nadir_sum_mm == pytest.approx(40)
    assert res[3].target_response is R.PD
    assert res[3].overall_response is R.PD
    assert res[3].non_target_response is R.NON_CR_NON_PD
    a = res[3].to_assessment("S-001", "W24", visits[3])
    assert a.overall_response is R.PD and a.nadir_sum_mm == pytest.approx(40)


def test_timeline_new_lesion_gives_pd_and_tracking_ids():
    visits = [
        _visit({"L1": 30, "L2": 20}),
        [*_visit({"L1": 29, "L2": 20}), lesion("new", 12, at=(0, -90, 40))],
    ]
    res = assess_timeline(visits)
    assert res[1].target_response is R.SD
    assert res[1].new_lesion_ids == ["new"]
    assert res[1].overall_response is R.PD
    assert res[1].tracking["NEW01"] == "new"
    assert res[1].tracking["T01"] == "vL1"


def test_timeline_small_new_finding_is_not_unequivocal():
    visits = [_visit({"L1": 30}), [*_visit({"L1": 30}), lesion("tiny", 3)]]
    assert assess_timeline(visits)[1].overall_response is R.SD


def test_timeline_complete_response_with_small_nodes():
    visits = [
        _visit({"L1": 30, "N1": 18}),
        _visit({"N1": 8}),  # lesion gone, node SA 8 mm
    ]
    res = assess_timeline(visits, [0, 60])
    assert res[1].sum_mm == pytest.approx(8)
    assert res[1].tracking["T01"] is None
    assert res[1].not_found == {"T01": pytest.approx(30.0)}
    assert res[0].not_found == {}
    assert res[1].target_response is R.CR
    assert res[1].overall_response is R.CR
    assert res[1].confirmation is not None


def test_timeline_disappeared_then_too_small():
    visits = [_visit({"L1": 30, "L2": 20}), _visit({"L1": 3, "L2": 20})]
    res = assess_timeline(visits)
    assert res[1].sum_mm == pytest.approx(25)  # 5 mm for the too-small lesion


def test_empty_timeline():
    assert assess_timeline([]) == []


def test_timeline_split_lesion_adds_fragments_and_is_not_new():
    base = [lesion("a", 40, at=(0, 0, 0)), lesion("b", 20, organ="lung", at=(90, 0, 0))]
    split = [
        lesion("a1", 22, at=(-8, 0, 0)),
        lesion("a2", 14, at=(14, 0, 0)),
        lesion("b", 20, organ="lung", at=(90, 0, 0)),
    ]
    res = assess_timeline([base, split])
    assert res[1].new_lesion_ids == []
    assert res[1].sum_mm == pytest.approx(22 + 14 + 20)
    assert res[1].overall_response is R.SD
    assert {res[1].tracking["T01"], res[1].tracking["T01.1"]} == {"a1", "a2"}


def test_not_found_gives_the_last_measured_size_and_skips_split_targets():
    visits = [
        _visit({"L1": 30, "L2": 20}),
        _visit({"L1": 24, "L2": 12}),
        _visit({"L1": 22}),
    ]
    res = assess_timeline(visits)
    assert res[1].not_found == {}
    assert res[2].not_found == {"T02": pytest.approx(12.0)}
    split = [lesion("a1", 22, at=(-8, 0, 0)), lesion("a2", 14, at=(14, 0, 0))]
    res = assess_timeline([[lesion("a", 40, at=(0, 0, 0))], split])
    assert res[1].not_found == {}


def test_a_target_outside_the_scanned_range_is_not_evaluated_not_gone():
    baseline = _visit({"L1": 30, "L2": 20})  # L2 at x = 80 mm
    follow_up = _visit({"L1": 18})  # L2 not found: outside the box below
    box = [[-50.0, -50.0, -50.0], [40.0, 50.0, 50.0]]
    res = assess_timeline([baseline, follow_up], coverage_mm=[None, box])
    assert res[1].not_imaged == {"T02": pytest.approx(20.0)}
    assert res[1].not_found == {}
    assert res[1].sum_mm == pytest.approx(18.0)
    assert res[1].target_response is R.NE
    # Inside the box the same absence is a disappearance.
    wide = [[-50.0, -50.0, -50.0], [120.0, 50.0, 50.0]]
    res = assess_timeline([baseline, follow_up], coverage_mm=[None, wide])
    assert res[1].not_found == {"T02": pytest.approx(20.0)} and not res[1].not_imaged
    assert res[1].target_response is R.PR
    # Growth of the imaged targets is progression whatever was not imaged.
    grown = _visit({"L1": 65})  # 65 mm alone is 30 % over the 50 mm nadir
    res = assess_timeline([baseline, grown], coverage_mm=[None, box])
    assert res[1].target_response is R.PD
