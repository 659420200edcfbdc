"""The XLSForm behind the golden exchanges, rebuilt with openpyxl.

The golden files do not record the XLSX bodies (``<6482 bytes of XLSX>``); golden 15 (fields)
and 32 (the XForm Central produced from version 2) show what they held: a required text
``name``, an integer ``age``, a group ``place`` with a select_one ``district`` and a
geopoint ``gps``, a select_multiple ``needs``, a repeat ``child`` with an integer
``child_age``; labels in English and Tajik; no form_id in settings (Central took it from
``X-XlsForm-FormId-Fallback``).
"""

from __future__ import annotations

import io

from openpyxl import Workbook


def golden_xlsx(version: str) -> bytes:
    """The golden form as XLSX bytes, with ``version`` in its settings sheet."""
    wb = Workbook()
    survey = wb.active
    survey.title = "survey"
    survey.append(["type", "name", "label::English (en)", "label::Tajik (tg)", "required"])
    survey.append(["text", "name", "Name", "Ном", "yes"])
    survey.append(["integer", "age", "Age", "Синну сол", ""])
    survey.append(["begin_group", "place", "Place", "Ҷой", ""])
    survey.append(["select_one district", "district", "District", "Ноҳия", ""])
    survey.append(["geopoint", "gps", "GPS", "GPS", ""])
    survey.append(["end_group", "", "", "", ""])
    survey.append(["select_multiple need", "needs", "Needs", "Эҳтиёҷот", ""])
    survey.append(["begin_repeat", "child", "Child", "Кӯдак", ""])
    survey.append(["integer", "child_age", "Child age", "Синни кӯдак", ""])
    survey.append(["end_repeat", "", "", "", ""])
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", "label::English (en)", "label::Tajik (tg)"])
    choices.append(["district", "nurek", "Nurek", "Nurek"])
    choices.append(["district", "rogun", "Rogun", "Rogun"])
    choices.append(["need", "legal", "legal", "legal"])
    choices.append(["need", "psychosocial", "psychosocial", "psychosocial"])
    choices.append(["need", "financial", "financial", "financial"])
    settings = wb.create_sheet("settings")
    settings.append(["version", "default_language"])
    settings.append([version, "English (en)"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
