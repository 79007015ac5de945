from tests.test_bad_input import *
def test_peek(service):
    emitter = service.token(Role.EMITTER, ["epic-adt"])
    officer = service.token(Role.PRIVACY_OFFICER)
    with service.client(emitter) as client:
        client.post("/v1/events", json={"events": [event([GOOD_ID]) for _ in range(3)]}).raise_for_status()
    with service.client(officer) as client:
        for raw in [b'{"t":"2026-01-01T00:00:00","s":1}', b'{"t":"2026-01-01T00:00:00Z","s":100000000000000000000000}', b'{"t":"0001-01-01T00:00:00+14:00","s":1}',b'{"t":"2026-01-01T00:00:00Z","s":NaN}']:
            c = base64.urlsafe_b64encode(raw).decode()
            r = client.post("/v1/reports/patient-access", json={"identifier": {"system": GOOD_ID[0], "value": GOOD_ID[1]}, "cursor": c})
            print(raw, r.status_code, r.text[:200])
        for f in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01"]:
            r = client.post("/v1/reports/patient-access", json={"identifier": {"system": GOOD_ID[0], "value": GOOD_ID[1]}, "from": f})
            print(f, r.status_code, r.text[:200])
        r = client.post("/v1/reports/patient-access", content=b'{"identifier":{"system":"s","value":"MRN\\ud800"}}', headers=JSON)
        print("surrogate", r.status_code, r.text[:300])
        r = client.post("/v1/reports/patient-access", content=b'{"identifier":{"system":"s","value":"MRN\xff"}}', headers=JSON)
        print("bad utf8", r.status_code, r.text[:300])
    with service.client() as client:
        r = client.post("/v1/reports/patient-access", content=b'{"identifier": ', headers=JSON)
        print("noauth badjson", r.status_code, r.text[:300])
