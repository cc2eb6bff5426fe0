"""Face privacy review dashboard: `streamlit run app.py`, then open the link it prints.

This file puts the access gate (dashboard/access.py) in front of Streamlit's server; the
dashboard itself, its pages and navigation, is navigation.py.
"""

import streamlit as st
from starlette.middleware import Middleware

from dashboard.access import AccessGate, lifespan

app = st.App("navigation.py", lifespan=lifespan, middleware=[Middleware(AccessGate)])
