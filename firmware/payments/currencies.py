"""The currencies a payment code may name: ISO 4217 numeric and alpha codes, minor units,
and how each is said aloud."""

from decimal import Decimal

# (ISO 4217 numeric, alpha, minor-unit digits, spoken plural)
_CURRENCIES = [
    ("036", "AUD", 2, "Australian dollars"), ("048", "BHD", 3, "Bahraini dinars"),
    ("050", "BDT", 2, "Bangladeshi taka"), ("096", "BND", 2, "Brunei dollars"),
    ("104", "MMK", 2, "Myanmar kyat"), ("116", "KHR", 2, "Cambodian riels"),
    ("124", "CAD", 2, "Canadian dollars"), ("144", "LKR", 2, "Sri Lankan rupees"),
    ("152", "CLP", 0, "Chilean pesos"), ("156", "CNY", 2, "Chinese yuan"),
    ("170", "COP", 2, "Colombian pesos"), ("203", "CZK", 2, "Czech korunas"),
    ("208", "DKK", 2, "Danish kroner"), ("344", "HKD", 2, "Hong Kong dollars"),
    ("348", "HUF", 2, "Hungarian forints"), ("356", "INR", 2, "Indian rupees"),
    ("360", "IDR", 2, "Indonesian rupiah"), ("392", "JPY", 0, "Japanese yen"),
    ("404", "KES", 2, "Kenyan shillings"), ("410", "KRW", 0, "South Korean won"),
    ("418", "LAK", 2, "Lao kip"), ("446", "MOP", 2, "Macanese patacas"),
    ("458", "MYR", 2, "Malaysian ringgit"), ("484", "MXN", 2, "Mexican pesos"),
    ("524", "NPR", 2, "Nepalese rupees"), ("554", "NZD", 2, "New Zealand dollars"),
    ("566", "NGN", 2, "Nigerian naira"), ("578", "NOK", 2, "Norwegian kroner"),
    ("586", "PKR", 2, "Pakistani rupees"), ("604", "PEN", 2, "Peruvian soles"),
    ("608", "PHP", 2, "Philippine pesos"), ("634", "QAR", 2, "Qatari riyals"),
    ("682", "SAR", 2, "Saudi riyals"), ("702", "SGD", 2, "Singapore dollars"),
    ("704", "VND", 0, "Vietnamese dong"), ("710", "ZAR", 2, "South African rand"),
    ("752", "SEK", 2, "Swedish kronor"), ("756", "CHF", 2, "Swiss francs"),
    ("764", "THB", 2, "Thai baht"), ("784", "AED", 2, "UAE dirhams"),
    ("818", "EGP", 2, "Egyptian pounds"), ("826", "GBP", 2, "pounds sterling"),
    ("840", "USD", 2, "US dollars"), ("901", "TWD", 2, "New Taiwan dollars"),
    ("949", "TRY", 2, "Turkish lira"), ("978", "EUR", 2, "euros"),
    ("985", "PLN", 2, "Polish zloty"), ("986", "BRL", 2, "Brazilian reais"),
]
CURRENCY_BY_NUMERIC = {num: alpha for num, alpha, _, _ in _CURRENCIES}
MINOR_UNITS = {alpha: minor for _, alpha, minor, _ in _CURRENCIES}
CURRENCY_NAMES = {alpha: name for _, alpha, _, name in _CURRENCIES}


def format_amount(amount: Decimal, currency: str | None) -> str:
    """The amount with the currency's minor digits ("12.50"), or as written if it has more."""
    minor = MINOR_UNITS.get(currency or "", 2)
    if amount.is_finite() and amount == amount.quantize(Decimal(1).scaleb(-minor)):
        return f"{amount:.{minor}f}"
    return str(amount)


def spoken(amount: Decimal, currency: str) -> str:
    """"12.50 Singapore dollars": the amount as it is said."""
    return f"{format_amount(amount, currency)} {CURRENCY_NAMES.get(currency, currency)}"


# What people say after an amount, to the ISO 4217 codes it may mean ("dollars": several).
CURRENCY_WORDS = {
    "yuan": ("CNY",), "rmb": ("CNY",), "renminbi": ("CNY",), "kuai": ("CNY",), "cny": ("CNY",),
    "rupees": ("INR",), "rupee": ("INR",), "inr": ("INR",),
    "reais": ("BRL",), "real": ("BRL",), "brl": ("BRL",),
    "euros": ("EUR",), "euro": ("EUR",), "eur": ("EUR",),
    "dollars": ("USD", "SGD", "HKD", "AUD", "CAD", "NZD", "TWD"), "dollar": ("USD", "SGD", "HKD",
                                                                         "AUD", "CAD", "NZD", "TWD"),
    "usd": ("USD",), "sgd": ("SGD",), "hkd": ("HKD",),
    "baht": ("THB",), "thb": ("THB",), "ringgit": ("MYR",), "myr": ("MYR",),
    "won": ("KRW",), "krw": ("KRW",), "yen": ("JPY",), "jpy": ("JPY",),
    "pounds": ("GBP",), "pound": ("GBP",), "gbp": ("GBP",), "pesos": ("PHP",), "php": ("PHP",),
    "rupiah": ("IDR",), "idr": ("IDR",), "dong": ("VND",), "vnd": ("VND",),
}
