"""The admin page in Chromium: register and edit a system, import a CSV (and
a bad one refused line by line), create a token (shown once) and revoke it;
a privacy officer refused."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from auditsvc.domain.tokens import Role

from .conftest import Console, shot, sign_in

GOOD_CSV = (
    "system_id,name,organization,address,relationship,baa_status,baa_effective,baa_expires,baa_reference\n"
    "synthetic-dictation,Dictation Service (synthetic),Acme Transcription,5 Elm St,business_associate,on_file,"
    "2025-01-01,2027-12-31,BAA-2025-17\n"
    "synthetic-hie,Regional HIE (synthetic),,,external_recipient,not_required,,,\n"
)
BAD_CSV = (
    "system_id,name,relationship,baa_status,baa_effective\n"
    "ok-system,Fine,workforce,not_required,\n"
    "bad-system,Missing date,business_associate,on_file,\n"
    "other,Wrong,friend,none,\n"
)


def test_register_edit_and_import_systems(page: Page, console: Console) -> None:
    sign_in(page, console, Role.ADMIN)
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Admin").click()
    register = page.get_by_role("form", name="Register a system")
    register.get_by_label("System id").fill("synthetic-billing")
    register.get_by_label("Name").fill("Billing Vendor (synthetic)")
    register.get_by_label("Relationship").select_option("business_associate")
    register.get_by_label("BAA status").select_option("none")
    register.get_by_role("button", name="Register").click()
    expect(page.get_by_role("status").filter(has_text="Saved the entry of synthetic-billing")).to_be_visible()
    # Edit it: the BAA is now on file.
    page.get_by_text("Edit synthetic-billing").click()
    edit = page.get_by_role("form", name="Edit synthetic-billing")
    edit.get_by_label("BAA status").select_option("on_file")
    edit.get_by_label("BAA effective").fill("2026-07-01")
    edit.get_by_label("BAA reference").fill("BAA-2026-031")
    edit.get_by_role("button", name="Save synthetic-billing").click()
    expect(page.get_by_role("status").filter(has_text="Saved the entry")).to_be_visible()
    admin = httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {console.tokens[Role.ADMIN]}"})
    entry = admin.get("/v1/systems/synthetic-billing").json()
    assert entry["baa"] == {
        "status": "on_file",
        "effective": "2026-07-01",
        "expires": None,
        "reference": "BAA-2026-031",
    }
    assert entry["recorded"]["by"] != "cli"  # recorded in the chain as the signed-in admin's change
    # A bad file: every bad line named, nothing imported.
    page.locator("#import-file").set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": BAD_CSV.encode()}]
    )
    page.get_by_role("button", name="Import", exact=True).click()
    errors = page.get_by_role("alert")
    expect(errors).to_contain_text("Nothing was imported")
    expect(errors).to_contain_text("line 3: baa: Value error, a BAA on file needs its 'effective' date")
    expect(errors).to_contain_text("line 4: relationship")
    assert admin.get("/v1/systems/ok-system").status_code == 404
    page.problems.clear()  # type: ignore[attr-defined]  # the refusal is a 422 page
    page.locator("#import-file").set_input_files(
        files=[{"name": "systems.csv", "mimeType": "text/csv", "buffer": GOOD_CSV.encode()}]
    )
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Imported 2 systems")).to_be_visible()
    expect(page.get_by_role("table").first).to_contain_text("Dictation Service (synthetic)")
    assert admin.get("/v1/systems/synthetic-dictation").json()["baa"]["reference"] == "BAA-2025-17"
    registry = page.get_by_role("table", name=re.compile("registered system"))
    registry.get_by_role("link", name="Name").click()
    registry.get_by_role("link", name="Name").click()  # descending
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Name")
    names = registry.locator("tbody tr:not(.edit-row) td:nth-child(2)").all_inner_texts()
    assert names == sorted(names, key=str.lower, reverse=True) and len(names) >= 3
    shot(page, "admin-registry")


def test_create_a_token_see_it_once_and_revoke_it(page: Page, console: Console) -> None:
    sign_in(page, console, Role.ADMIN)
    page.goto("/admin")
    page.get_by_label("Role").select_option("emitter")
    page.get_by_label("Source systems").fill("synthetic-dictation")
    page.get_by_label("Name", exact=True).last.fill("Dictation interface (synthetic)")
    page.get_by_role("button", name="Create the token").click()
    shown = page.locator("#new-token")
    expect(shown).to_have_text(re.compile(r"^asv_[0-9a-f]{16}_"))
    new_token = shown.inner_text()
    token_id = new_token.split("_")[1]
    assert new_token not in " ".join(page.visited)  # type: ignore[attr-defined]
    answer = httpx.post(
        f"{console.url}/v1/events", json={"events": []}, headers={"Authorization": f"Bearer {new_token}"}
    )
    assert answer.status_code == 422  # authenticated (an empty batch is refused), not 401
    page.goto("/admin")
    expect(page.locator("#new-token")).to_have_count(0)  # shown once
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke token {token_id}").click()
    expect(page.get_by_role("status").filter(has_text=f"Revoked token {token_id}")).to_be_visible()
    answer = httpx.post(
        f"{console.url}/v1/events", json={"events": []}, headers={"Authorization": f"Bearer {new_token}"}
    )
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
