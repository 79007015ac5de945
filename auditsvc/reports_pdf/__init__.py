"""Report documents (PDF) for the privacy office, drawn with reportlab.

One place for the layout (``layout.py``) and one module per document:
``patient_report_document`` (who accessed this patient) and
``accounting_document`` (the §164.528 accounting of disclosures). They
render what the domain answered, with its integrity statement
(domain/report_integrity.py); they read nothing themselves.
"""

from __future__ import annotations

from .accounting import accounting_document
from .patient import patient_report_document

__all__ = ["accounting_document", "patient_report_document"]
