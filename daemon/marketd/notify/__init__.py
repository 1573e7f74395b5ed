"""Notifications: alerts sent to webhooks, Telegram and Discord beside the browsers.

* :mod:`~marketd.notify.messages`: the text of an alert, the webhook body and its
  signature (pure);
* :mod:`~marketd.notify.senders`: each service's request and how its answer is judged,
  the retry delay (pure);
* :mod:`~marketd.notify.http`: one HTTP/1.1 POST over trio (h11);
* :mod:`~marketd.notify.service`: the detector's listener (a bounded queue per notifier,
  never blocking) and the supervised sender tasks.
"""
