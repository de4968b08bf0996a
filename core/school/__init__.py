"""Administration of a school: roster import, invite codes, the calendar, the demo school."""
