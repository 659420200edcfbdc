"""Plausible answers from Tajikistan: names, phrases in Tajik, Russian and English, and
district centres, so simulated data looks like what enumerators there would send.
Coordinates are approximate district centres (degrees), good for a simulation only.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

# Tajikistan's bounding box (the brief's figures): lat 36.7-41.0, lon 67.4-75.1
LAT_RANGE = (36.7, 41.0)
LON_RANGE = (67.4, 75.1)

# name -> (lat, lon, altitude m); keys are lower-case Latin spellings pyxform choice names use
DISTRICTS: dict[str, tuple[float, float, float]] = {
    "dushanbe": (38.559, 68.787, 800),
    "nurek": (38.390, 69.322, 600),
    "rogun": (38.789, 69.773, 1100),
    "vahdat": (38.556, 69.016, 900),
    "hisor": (38.526, 68.551, 800),
    "tursunzoda": (38.513, 68.232, 700),
    "shahrinav": (38.567, 68.334, 800),
    "varzob": (38.772, 68.822, 1300),
    "rudaki": (38.450, 68.800, 850),
    "faizobod": (38.548, 69.321, 1200),
    "rasht": (39.020, 70.380, 1300),
    "khujand": (40.283, 69.623, 330),
    "istaravshan": (39.911, 69.006, 1000),
    "isfara": (40.127, 70.625, 860),
    "konibodom": (40.292, 70.427, 410),
    "panjakent": (39.495, 67.609, 1000),
    "ayni": (39.394, 68.537, 1400),
    "guliston": (40.233, 69.690, 400),
    "kulob": (37.914, 69.784, 600),
    "bokhtar": (37.836, 68.781, 430),
    "danghara": (38.096, 69.337, 700),
    "vose": (37.800, 69.644, 550),
    "farkhor": (37.492, 69.402, 440),
    "panj": (37.236, 69.099, 360),
    "vakhsh": (37.711, 68.832, 400),
    "jaloliddini_balkhi": (37.970, 68.700, 450),
    "qubodiyon": (37.401, 68.166, 400),
    "shahritus": (37.261, 68.138, 400),
    "muminobod": (38.103, 70.029, 1200),
    "khovaling": (38.348, 69.978, 1500),
    "baljuvon": (38.331, 69.672, 1300),
    "khorog": (37.489, 71.553, 2200),
    "murghob": (38.170, 73.964, 3600),
    "ishkoshim": (36.727, 71.612, 2600),
    "vanj": (38.370, 71.450, 1700),
    "darvoz": (38.430, 70.780, 1200),
}

# Cyrillic and alternative spellings a form's choice names or labels may use
_ALIASES = {
    "душанбе": "dushanbe",
    "норак": "nurek",
    "нурек": "nurek",
    "рогун": "rogun",
    "ваҳдат": "vahdat",
    "вахдат": "vahdat",
    "ҳисор": "hisor",
    "гиссар": "hisor",
    "hissar": "hisor",
    "турсунзода": "tursunzoda",
    "хуҷанд": "khujand",
    "худжанд": "khujand",
    "khudjand": "khujand",
    "истаравшан": "istaravshan",
    "исфара": "isfara",
    "панҷакент": "panjakent",
    "пенджикент": "panjakent",
    "penjikent": "panjakent",
    "кӯлоб": "kulob",
    "куляб": "kulob",
    "kulyab": "kulob",
    "бохтар": "bokhtar",
    "qurghonteppa": "bokhtar",
    "kurgan_tyube": "bokhtar",
    "данғара": "danghara",
    "dangara": "danghara",
    "хорог": "khorog",
    "мурғоб": "murghob",
    "murgab": "murghob",
    "рашт": "rasht",
    "garm": "rasht",
    "восеъ": "vose",
    "фархор": "farkhor",
}


@lru_cache(maxsize=4096)
def district_centre(value: str) -> tuple[float, float, float] | None:
    """The centre of a district named by a choice value or label, if we know it."""
    key = re.sub(r"[^\w]+", "_", value.strip().lower()).strip("_")
    key = _ALIASES.get(key, key)
    if key in DISTRICTS:
        return DISTRICTS[key]
    for name in DISTRICTS:
        if len(key) >= 4 and (key.startswith(name) or name.startswith(key)):
            return DISTRICTS[name]
    return None


FEMALE = [
    "Гулноза",
    "Зарина",
    "Нигина",
    "Мадина",
    "Фарангис",
    "Шаҳноза",
    "Дилноза",
    "Ситора",
    "Манижа",
    "Рухшона",
    "Мавлуда",
    "Тахмина",
]
MALE = [
    "Фаррух",
    "Ҷамшед",
    "Рустам",
    "Бахтиёр",
    "Далер",
    "Сӯҳроб",
    "Шерзод",
    "Комрон",
    "Умед",
    "Фирдавс",
    "Илҳом",
    "Исмоил",
]
SURNAMES = [
    "Раҳимов",
    "Саидов",
    "Каримов",
    "Назаров",
    "Шарипов",
    "Юсуфов",
    "Ҳасанов",
    "Мирзоев",
    "Қодиров",
    "Бобоев",
    "Холов",
    "Сафаров",
]
LATIN_NAMES = ["Gulnoza Rahimova", "Farrukh Saidov", "Zarina Karimova", "Jamshed Nazarov"]

PHRASES = {
    "tg": [
        "Оила ба кӯмаки ҳуқуқӣ ниёз дорад",
        "Падар дар Русия кор мекунад",
        "Кӯдакон ба мактаб мераванд",
        "Хона таъмирро талаб мекунад",
        "Се моҳ боз аз муҳоҷир хабаре нест",
        "Модар бо се фарзанд танҳо зиндагӣ мекунад",
    ],
    "ru": [
        "Муж работает в Москве, деньги присылает редко",
        "Семья нуждается в юридической помощи",
        "Дети посещают школу",
        "Нет связи с родственником более трёх месяцев",
        "Просят помочь с документами для выезда",
    ],
    "en": [
        "Husband works in Russia, remittances irregular",
        "Family needs legal aid",
        "Children attend school",
        "No contact with the migrant relative for three months",
        "Grandmother cares for the children",
    ],
}


def full_name(rng: random.Random) -> str:
    if rng.random() < 0.08:
        return rng.choice(LATIN_NAMES)
    female = rng.random() < 0.5
    first = rng.choice(FEMALE if female else MALE)
    surname = rng.choice(SURNAMES) + ("а" if female else "")
    return f"{first} {surname}"


def gender_of(name: str) -> str | None:
    """ "female"/"male" for a name full_name() made (first name or surname ending)."""
    parts = name.split()
    if not parts:
        return None
    if parts[0] in FEMALE or parts[0] in ("Gulnoza", "Zarina"):
        return "female"
    if parts[0] in MALE or parts[0] in ("Farrukh", "Jamshed"):
        return "male"
    return None


def phrase(rng: random.Random) -> str:
    lang = rng.choices(["tg", "ru", "en"], weights=[5, 3, 2])[0]
    return rng.choice(PHRASES[lang])


def phone(rng: random.Random) -> str:
    return f"+992 {rng.choice('9')}{rng.randint(0, 9)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"


def point_near(
    rng: random.Random, centre: tuple[float, float, float] | None
) -> tuple[float, float, float, float]:
    """lat, lon, altitude, accuracy: near a district centre, else anywhere in the country."""
    if centre is None:
        lat = rng.uniform(38.0, 40.3)  # the populated middle of the box, clearly inside
        lon = rng.uniform(68.2, 70.5)
        alt = rng.uniform(300, 1500)
    else:
        lat = centre[0] + rng.uniform(-0.06, 0.06)
        lon = centre[1] + rng.uniform(-0.06, 0.06)
        alt = centre[2] + rng.uniform(-60, 60)
    lat = min(max(lat, LAT_RANGE[0] + 0.01), LAT_RANGE[1] - 0.01)
    lon = min(max(lon, LON_RANGE[0] + 0.01), LON_RANGE[1] - 0.01)
    return round(lat, 6), round(lon, 6), round(alt, 1), round(rng.uniform(3, 25), 1)


_VILLAGE_PARTS = ["Қишлоқи", "Деҳаи", "Маҳаллаи"]
_VILLAGE_NAMES = ["Навобод", "Гулистон", "Сомониён", "Ғалаба", "Ҷилликӯл", "Обшорон", "Чорбоғ"]


def village(rng: random.Random, district: str | None) -> str:
    """A village name; in the chosen district when there is one."""
    name = f"{rng.choice(_VILLAGE_PARTS)} {rng.choice(_VILLAGE_NAMES)}"
    if district:
        return f"{name} ({district.replace('_', ' ').title()})"
    return name
