"""Payment codes: parse what a merchant QR or product barcode says, and refuse the tricks.

`payloads.parse()` turns decoded barcode text into a `Payment`, `ProductCode` or `Other`
(`results.py`), each form read by its own parser (`emvco`, `upi`, `sepa`, `products`);
`safety.check()` / `safety.check_text()` decide whether the glasses may offer to pay.
"""
