def main(argv=None):
    print("speechport")
    return 0
