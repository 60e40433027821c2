"""What the Streamlit app (``ui/``) needs besides Streamlit: users and roles, tables and messages.

The pages in ``ui/`` only draw; every rule (who sees which page, how a service that is down is
named, how the registry's tags become a table) lives here, where it is tested without a browser.
"""
