"""The synthetic trial generator: DICOM studies with known answers.

``generate_trial(out_dir, subjects, seed, small=False, scenarios=None)`` writes::

    out_dir/
      dicom/<subject>/<time point>/<series number>_<description>/NNNN.dcm
      ground_truth.json     what is true (schema below)
      charter.yaml          the imaging charter (tools.charter.load_charter)
      protocol.md, .pdf     the protocol's imaging sections, from the same charter
      edc_site_values.json  values as the sites entered them, clinical context

Everything is a function of the seed. Subject ``n`` follows scenario
``scenarios[n % len(scenarios)]`` (default :data:`ALL_SCENARIOS`: RECIST partial
response, stable disease, progression by growth, progression by a new lesion,
complete response, nodal targets; LVEF with and without CTRCD; haematoma with
and without expansion). Instances are single-frame CT Image Storage or MR Image
Storage with the Clinical Trial Subject, Study and Series modules.

``ground_truth.json`` schema (version 1)
----------------------------------------
Top level: ``schema_version``, ``trial_id``, ``sponsor``, ``protocol_name``,
``seed``, ``small``, ``private_name_tag`` (``group``, ``creator``,
``element``: the private element that repeats the patient's name),
``subjects`` (list) and ``deviations`` (every planted deviation: ``code``,
``subject_id``, ``time_point_id``, ``detail``; codes ``slice_thickness``,
``contrast_missing``, ``wrong_modality``, ``visit_out_of_window``,
``missing_visit``).

Per subject: ``subject_id``, ``site_id``, ``site_name``, ``scenario``,
``scenario_summary``, ``cohort`` (oncology | cardiac | neuro), ``criteria``
(recist | lvef | ich), ``day_zero_date``, ``deviations`` (that subject's),
``phi`` and ``visits``.

``phi``: every planted identifying value: ``PatientName`` (DICOM PN, often
non-ASCII; files use SpecificCharacterSet ISO_IR 192), ``PatientID`` (MRN),
``IssuerOfPatientID``, ``PatientBirthDate``, ``PatientSex``,
``PatientAddress``, ``PatientTelephoneNumbers``, ``PatientSize``,
``PatientWeight``, ``InstitutionName``, ``InstitutionAddress``,
``InstitutionalDepartmentName``, ``StationName``, ``ReferringPhysicianName``,
``PerformingPhysicianName``, ``OperatorsName``, ``private_tag_value`` and per
visit ``visits``: ``time_point_id``, ``StudyDate``, ``StudyTime``,
``AccessionNumber``, ``StudyID``, ``PatientAge``, ``burned_in_text`` (the text
drawn into the pixels of the series with BurnedInAnnotation YES, else null).

Per visit (every scheduled time point, in schedule order): ``time_point_id``,
``time_point_description``, ``visit_index``, ``missing`` (true: no study was
acquired; then ``visit_day`` and ``study_uid`` are null), ``visit_day`` (days
from day zero), ``study_date``, ``study_uid``, ``path`` (relative to
``out_dir``), ``series`` (``series_uid``, ``series_number``, ``description``,
``modality``, ``folder``, ``instances``, ``slice_thickness_mm``,
``contrast_agent``, ``burned_in_annotation``, ``localizer``),
``expected_priority`` and ``expected_priority_reasons`` (the charter's alert
rules applied to the facts below), and ``site_reported`` (``values`` as in
edc_site_values.json, ``discordant_items``: items planted more than 20 % off).

Oncology visits add ``modality``, ``contrast``, ``slice_thickness_mm``,
``axial_series_uid``, ``axial_slices`` and ``lesions``: ``lesion_id``,
``status`` (present | too_small | disappeared | absent), ``role`` (target |
non_target | new) and, when in the pixels, ``kind`` (lesion | node),
``organ``, ``longest_diameter_mm`` and ``short_axis_mm`` (on the axial slice
``slice_index`` that cuts the lesion widest), ``centre_mm`` (patient LPS mm),
``volume_ml``, ``hu`` and for too-small lesions ``recorded_diameter_mm`` (5).
Then ``sum_of_diameters_mm`` (LD of non-nodal targets + short axis of nodal
targets, too small = 5 mm, gone = 0), ``baseline_sum_mm``, ``nadir_sum_mm``,
``percent_change_from_baseline``, ``percent_change_from_nadir``,
``target_lesion_ids``, ``non_target_lesion_ids``, ``new_lesion_ids``,
``target_response``, ``non_target_response`` and ``overall_response``
(BASELINE at the first visit; otherwise from :mod:`models.quantify.recist`).

Cardiac visits add ``edv_ml``, ``esv_ml``, ``lvef_percent``,
``volumes_ml_per_phase``, ``ed_trigger_time_ms``, ``es_trigger_time_ms``,
``cine_series_uid``, ``lv_axis_point_mm`` and ``lv_axis_direction`` (a point
on the LV long axis and its direction from apex to base, patient mm),
``lvef_baseline_percent``, ``lvef_drop_points`` and ``ctrcd`` (ESC 2022 class
from :func:`models.quantify.lvef.ctrcd_class`).
Volumes are disc sums: cavity area on each slice times the slice spacing.

Neuro visits add ``haematoma_volume_ml`` (disc sum), ``haematoma_hu``,
``haematoma_centre_mm``, ``axial_series_uid``, ``haematoma_change_ml`` and
``haematoma_expansion`` (over the admission scan).
"""

from evals.synth.generator import (
    SubjectManifest,
    TrialManifest,
    VisitManifest,
    generate_trial,
)
from evals.synth.scenarios import ALL_SCENARIOS, DEMO_SCENARIOS, SCENARIOS

__all__ = [
    "ALL_SCENARIOS",
    "DEMO_SCENARIOS",
    "SCENARIOS",
    "SubjectManifest",
    "TrialManifest",
    "VisitManifest",
    "generate_trial",
]
