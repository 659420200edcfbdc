"""The page's words in English, Tajik and Russian (indicator titles and formulas come from
the indicator catalogue; choice labels from the forms)."""

from __future__ import annotations

TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "Programme data", "tg": "Маълумоти барнома", "ru": "Данные программы"},
    "sign_in": {"en": "Sign in", "tg": "Ворид шудан", "ru": "Войти"},
    "sign_out": {"en": "Sign out", "tg": "Баромадан", "ru": "Выйти"},
    "api_key": {"en": "API key", "tg": "Калиди API", "ru": "Ключ API"},
    "bad_key": {
        "en": "Unknown or revoked API key.",
        "tg": "Калиди API номаълум ё бекоршуда.",
        "ru": "Неизвестный или отозванный ключ API.",
    },
    "indicators": {"en": "Indicators", "tg": "Нишондиҳандаҳо", "ru": "Показатели"},
    "formula": {"en": "Formula", "tg": "Формула", "ru": "Формула"},
    "district": {"en": "District", "tg": "Ноҳия", "ru": "Район"},
    "total": {"en": "All periods", "tg": "Ҳамаи давраҳо", "ru": "Все периоды"},
    "suppressed": {"en": "suppressed", "tg": "пинҳон", "ru": "скрыто"},
    "suppressed_note": {
        "en": "Cells below {n} are suppressed; people counts are rounded to multiples of {b}.",
        "tg": "Ҳуҷайраҳои камтар аз {n} пинҳон карда шудаанд; шумора то {b} яклухт карда шудааст.",
        "ru": "Ячейки меньше {n} скрыты; число людей округлено до кратного {b}.",
    },
    "map": {
        "en": "Visits by district",
        "tg": "Боздидҳо аз рӯи ноҳия",
        "ru": "Посещения по районам",
    },
    "map_note": {
        "en": "Circles at district centres, sized by the count; no individual locations.",
        "tg": "Доираҳо дар маркази ноҳияҳо; ҷойҳои алоҳида нишон дода намешаванд.",
        "ru": "Круги в центрах районов по числу; без отдельных точек.",
    },
    "sync": {"en": "Sync status", "tg": "Ҳолати ҳамоҳангсозӣ", "ru": "Состояние синхронизации"},
    "form": {"en": "Form", "tg": "Шакл", "ru": "Форма"},
    "last_ok": {
        "en": "Last good sync",
        "tg": "Охирин ҳамоҳангсозӣ",
        "ru": "Последняя синхронизация",
    },
    "submissions": {"en": "Submissions", "tg": "Пешниҳодҳо", "ru": "Анкеты"},
    "last_error": {"en": "Last error", "tg": "Хатои охирин", "ru": "Последняя ошибка"},
    "issues": {"en": "Data issues", "tg": "Мушкилоти маълумот", "ru": "Проблемы данных"},
    "issues_none": {"en": "No data issues.", "tg": "Мушкилот нест.", "ru": "Проблем нет."},
    "needs_analyst": {
        "en": "Needs an analyst key.",
        "tg": "Калиди таҳлилгар лозим аст.",
        "ru": "Нужен ключ аналитика.",
    },
    "reason": {"en": "Reason", "tg": "Сабаб", "ru": "Причина"},
    "field": {"en": "Field", "tg": "Савол", "ru": "Вопрос"},
    "value": {"en": "Value", "tg": "Қимат", "ru": "Значение"},
    "withheld": {"en": "withheld", "tg": "пинҳон", "ru": "скрыто"},
    "exports": {"en": "Exports", "tg": "Содирот", "ru": "Выгрузки"},
    "odata": {
        "en": "OData feed (Excel, Power BI)",
        "tg": "OData (Excel, Power BI)",
        "ru": "OData (Excel, Power BI)",
    },
    "role": {"en": "Role", "tg": "Нақш", "ru": "Роль"},
    "districts": {"en": "Districts", "tg": "Ноҳияҳо", "ru": "Районы"},
    "all": {"en": "all", "tg": "ҳама", "ru": "все"},
    "no_data": {"en": "No data yet.", "tg": "Ҳоло маълумот нест.", "ru": "Данных пока нет."},
}
LANGS = {"en": "English", "tg": "Тоҷикӣ", "ru": "Русский"}


def words(lang: str) -> dict[str, str]:
    """Every word of the page in ``lang``."""
    return {k: v.get(lang) or v["en"] for k, v in TEXT.items()}
