"""``bench/fanout.py --patch`` file: workers that send the issue with tracking off.

For the side-by-side of README's "Fan-out with tracked links": the same send with its
links as written and no tokens made, as a newsletter with click tracking off sends it.
"""

from signalpost.publishing import rendering

rendering._tracked_body = lambda issue: None
