"""DIMSE with pynetdicom: C-FIND the saved query, C-GET a study, C-STORE results."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, build_role, evt, sop_class
from pynetdicom.association import Association

from client.pacs.config import PacsConfig, SavedQuery
from client.pacs.remote import InstanceSink, PacsUnavailable, StoreResult, StudyHit

__all__ = ["RETRIEVED_CLASSES", "DimseRemote"]

_FIND = getattr(sop_class, "StudyRootQueryRetrieveInformationModelFind")  # noqa: B009
_GET = getattr(sop_class, "StudyRootQueryRetrieveInformationModelGet")  # noqa: B009
_MOVE = getattr(sop_class, "StudyRootQueryRetrieveInformationModelMove")  # noqa: B009
#: The storage classes a C-GET asks for (an association holds at most 128 contexts): the
#: images MedFleet's tasks read and the SEG / SR / capture objects that hold labels.
RETRIEVED_CLASSES = tuple(
    getattr(sop_class, name)
    for name in (
        "CTImageStorage", "EnhancedCTImageStorage", "MRImageStorage", "EnhancedMRImageStorage",
        "SegmentationStorage", "Comprehensive3DSRStorage", "ComprehensiveSRStorage",
        "EnhancedSRStorage", "BasicTextSRStorage", "SecondaryCaptureImageStorage",
        "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
        "MultiFrameGrayscaleWordSecondaryCaptureImageStorage",
        "MultiFrameTrueColorSecondaryCaptureImageStorage", "ComputedRadiographyImageStorage",
        "DigitalXRayImageStorageForPresentation",
        "DigitalMammographyXRayImageStorageForPresentation", "UltrasoundImageStorage",
        "UltrasoundMultiFrameImageStorage", "PositronEmissionTomographyImageStorage",
        "NuclearMedicineImageStorage", "XRayAngiographicImageStorage",
    )
)  # fmt: skip
_SUCCESS, _PENDING = 0x0000, (0xFF00, 0xFF01)


class DimseRemote:
    """A PACS reached over DICOM's DIMSE services (one association per operation)."""

    def __init__(self, config: PacsConfig) -> None:
        self.config = config

    def find_studies(self, query: SavedQuery) -> list[StudyHit]:
        """C-FIND at study level with the query's modality, description and dates."""
        request = Dataset()
        request.QueryRetrieveLevel = "STUDY"
        request.StudyInstanceUID = ""
        request.ModalitiesInStudy = query.modality
        request.StudyDescription = query.study_description
        request.StudyDate = query.date_range
        request.NumberOfStudyRelatedInstances = ""
        hits = []
        for found in self._find(request):
            modalities = found.get("ModalitiesInStudy", [])
            modalities = [modalities] if isinstance(modalities, str) else list(modalities)
            hits.append(
                StudyHit(
                    uid=str(found.StudyInstanceUID),
                    instances=int(found.get("NumberOfStudyRelatedInstances") or 0),
                    modalities=tuple(str(m) for m in modalities),
                    description=str(found.get("StudyDescription", "")),
                    date=str(found.get("StudyDate", "")),
                )
            )
        return hits

    def has_body_part(self, study: str, query: SavedQuery) -> bool:
        """Whether a series of `study` (of the query's modality) has the query's body part."""
        request = Dataset()
        request.QueryRetrieveLevel = "SERIES"
        request.StudyInstanceUID = study
        request.SeriesInstanceUID = ""
        request.Modality = query.modality
        request.BodyPartExamined = query.body_part
        return any(
            str(found.get("BodyPartExamined", "")).upper() == query.body_part
            for found in self._find(request)
        )

    def retrieve(self, study: str, sink: InstanceSink) -> bool:
        """C-GET or C-MOVE the whole study; each instance goes to `sink` as it arrives.

        Returns True when the PACS's last response is Success (every sub-operation done),
        False on a failure, cancel or warning status (some instances were not sent).

        Raises
        ------
        PacsUnavailable
            When the association cannot be made or breaks off (what arrived before stays
            with the sink).
        """
        request = Dataset()
        request.QueryRetrieveLevel = "STUDY"
        request.StudyInstanceUID = study
        handlers = [(evt.EVT_C_STORE, _store_handler(sink))]
        if self.config.retrieve == "move":
            return self._move(request, handlers)
        ae = self._ae([_GET, *RETRIEVED_CLASSES])
        roles = [build_role(uid, scp_role=True) for uid in RETRIEVED_CLASSES]
        with self._association(ae, ext_neg=roles, evt_handlers=handlers) as assoc:
            complete = _until_done(assoc.send_c_get(request, _GET))
            if assoc.is_aborted:
                raise PacsUnavailable(f"PACS '{self.config.name}' broke off the retrieve")
        return complete

    def _move(self, request: Dataset, handlers: list[Any]) -> bool:
        """C-MOVE to this site's calling AE title, received by a storage SCP on move-port.

        The SCP lives only for this retrieve and accepts only the PACS's AE title.
        """
        receiver = AE(ae_title=self.config.calling_ae)
        receiver.require_calling_aet = [self.config.called_ae]
        receiver.network_timeout = self.config.timeout
        for uid in RETRIEVED_CLASSES:
            receiver.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
        server = receiver.start_server(
            ("", self.config.move_port), block=False, evt_handlers=handlers
        )
        try:
            with self._association(self._ae([_MOVE])) as assoc:
                complete = _until_done(assoc.send_c_move(request, self.config.calling_ae, _MOVE))
                if assoc.is_aborted:
                    raise PacsUnavailable(f"PACS '{self.config.name}' broke off the retrieve")
        finally:
            if server is not None:  # None only when start_server blocks
                server.shutdown()
        return complete

    def store(self, paths: Sequence[Path]) -> list[StoreResult]:
        """C-STORE each file (one association) and return the PACS's status per file."""
        datasets = [dcmread(path) for path in paths]
        contexts = {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}
        ae = self._ae([])
        for uid, syntax in sorted(contexts):
            ae.add_requested_context(uid, [syntax])
        results = []
        with self._association(ae) as assoc:
            for path, ds in zip(paths, datasets, strict=True):
                status = assoc.send_c_store(ds)
                code = int(status.get("Status", 0xFFFF)) if status else 0xFFFF
                results.append(StoreResult(Path(path), str(ds.SOPInstanceUID), code))
        return results

    def _find(self, request: Dataset) -> list[Dataset]:
        found = []
        with self._association(self._ae([_FIND])) as assoc:
            for status, identifier in assoc.send_c_find(request, _FIND):
                code = status.get("Status") if status else None
                if code in _PENDING and identifier is not None:
                    found.append(identifier)
                elif code != _SUCCESS:
                    raise PacsUnavailable(
                        f"PACS '{self.config.name}' answered the query with a failure",
                        local=f"status {code}",
                    )
        return found

    def _ae(self, contexts: Sequence[str]) -> AE:
        ae = AE(ae_title=self.config.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.config.timeout
        for uid in contexts:
            ae.add_requested_context(uid)
        return ae

    @contextmanager
    def _association(self, ae: AE, **kwargs: Any) -> Iterator[Association]:
        cfg = self.config
        assoc = ae.associate(cfg.host, cfg.port, ae_title=cfg.called_ae, **kwargs)
        if not assoc.is_established:
            raise PacsUnavailable(
                f"PACS '{cfg.name}' refused or did not answer the association: check its "
                "host, port and called-ae, and that it knows this site's calling-ae",
                local=f"{cfg.host}:{cfg.port} {cfg.called_ae}",
            )
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()


def _store_handler(sink: InstanceSink) -> Any:
    """An EVT_C_STORE handler that hands each received instance's file bytes to `sink`."""

    def on_store(event: Any) -> int:
        ds = event.dataset
        sink(
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
            str(event.request.AffectedSOPInstanceUID),
            event.encoded_dataset(include_meta=True),
        )
        return _SUCCESS

    return on_store


def _until_done(responses: Iterator[tuple[Dataset, Dataset | None]]) -> bool:
    """Read a C-GET / C-MOVE's responses to the last; True when that one is Success."""
    last = None
    for status, _ in responses:
        last = status.get("Status") if status else None
        if last not in _PENDING:
            break
    return last == _SUCCESS
