"""Contact sheet of a cache's breast boxes and masks: suspect rows first, then a sample.

Every suspect row of the manifest (qc = suspect, with its reason) and a random sample of the
rows that passed, as thumbnails with the breast box (red: suspect, green: pass), the mask
outline (cyan) and the pectoral muscle's edge on MLO views (yellow). With --src (the folder
that was indexed; the cache's key file maps ids to paths inside it) the thumbnails show the
source images; otherwise the cached images, and the page says so. A cache indexed before
quality control is judged on the fly (its manifest is left as it is).

Writes DIR/index.html, DIR/page-001.png ... and DIR/sheet.csv (tile order). Captions show
the pseudonymous row id and the reason, never a file name.

example:
  mammodino qc cache/cbis --out qc/cbis --src /data/CBIS-DDSM
"""

from __future__ import annotations

HELP = "Contact sheet of breast boxes and masks: suspect rows first with their reason, then a sample."


def add_arguments(parser) -> None:
    parser.add_argument("cache", metavar="CACHE", help="cache folder written by `mammodino index`")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for index.html and the PNG pages")
    parser.add_argument("--src", default=None,
                        help="the folder that was indexed: thumbnails of the source images (default: cached images)")
    parser.add_argument("--sample", type=int, default=24, help="rows that passed to show, drawn at random (default 24)")
    parser.add_argument("--max-suspect", type=int, default=240, help="suspect rows to show at most (default 240)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")


def run(args) -> int:
    from mammodino.data.qc_sheet import write_contact_sheet
    from mammodino.errors import UserError

    if args.sample < 0 or args.max_suspect < 0:
        raise UserError(f"--sample and --max-suspect must be >= 0 (got {args.sample}, {args.max_suspect})")
    s = write_contact_sheet(args.cache, args.out, src=args.src, sample=args.sample, max_suspect=args.max_suspect,
                            seed=args.seed)
    reasons = ", ".join(f"{k} {v}" for k, v in s["reasons"].items())
    print(f"qc: {s['suspect']} of {s['rows']} ok rows suspect" + (f" ({reasons})" if reasons else "")
          + f"; {len(s['pages'])} page(s), {s['suspect_shown']} suspect + {s['pass_shown']} passed shown, "
          f"{s['from_source']} from the source images; open {s['html']}")
    return 0
