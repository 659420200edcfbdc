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


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    """A workbook holding one sheet per entry, its rows as given, as XLSX bytes."""
    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        sheet = wb.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def golden_xlsx(version: str) -> bytes:
    """The golden form as XLSX bytes, with ``version`` in its settings sheet."""
    return xlsx_bytes(
        {
            "survey": [
                ["type", "name", "label::English (en)", "label::Tajik (tg)", "required"],
                ["text", "name", "Name", "Ном", "yes"],
                ["integer", "age", "Age", "Синну сол", ""],
                ["begin_group", "place", "Place", "Ҷой", ""],
                ["select_one district", "district", "District", "Ноҳия", ""],
                ["geopoint", "gps", "GPS", "GPS", ""],
                ["end_group", "", "", "", ""],
                ["select_multiple need", "needs", "Needs", "Эҳтиёҷот", ""],
                ["begin_repeat", "child", "Child", "Кӯдак", ""],
                ["integer", "child_age", "Child age", "Синни кӯдак", ""],
                ["end_repeat", "", "", "", ""],
            ],
            "choices": [
                ["list_name", "name", "label::English (en)", "label::Tajik (tg)"],
                ["district", "nurek", "Nurek", "Nurek"],
                ["district", "rogun", "Rogun", "Rogun"],
                ["need", "legal", "legal", "legal"],
                ["need", "psychosocial", "psychosocial", "psychosocial"],
                ["need", "financial", "financial", "financial"],
            ],
            "settings": [["version", "default_language"], [version, "English (en)"]],
        }
    )
