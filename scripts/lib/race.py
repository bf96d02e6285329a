"""Sends N holds at once to POST /v1/reservations, spread over the given slot
starts, and prints how they were answered, as JSON {"STATUS TYPE": count}
(TYPE: the hold's status, or the problem's type; "error ..." when no answer).

    python3 race.py API_URL RESOURCE_ID N '["2030-01-08T08:00:00Z", ...]'

Every request is built first and released by one barrier, so they are in
flight together. Standard library only.
"""

import collections
import json
import sys
import threading
import urllib.error
import urllib.request


def main(api, resource, n, starts):
    barrier = threading.Barrier(n)
    outcomes = [None] * n

    def hold(i):
        body = {"resource_id": resource, "start": starts[i % len(starts)],
                "customer": {"name": f"Racer {i}", "email": f"racer{i}@example.com"}}
        request = urllib.request.Request(f"{api}/v1/reservations", data=json.dumps(body).encode(), method="POST",
                                         headers={"content-type": "application/json"})
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                outcomes[i] = f"{response.status} {json.load(response).get('status')}"
        except urllib.error.HTTPError as e:
            try:
                outcomes[i] = f"{e.code} {json.loads(e.read()).get('type')}"
            except ValueError:
                outcomes[i] = f"{e.code} unreadable body"
        except Exception as e:  # no answer at all: counted, never hidden
            outcomes[i] = f"error {type(e).__name__}"

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(collections.Counter(outcomes)))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
